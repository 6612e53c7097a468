"""Citation accuracy for legal answers: the law and article cited in the answer against the reference.

exact: the answer cites the reference's first (law, article) pair, comparing law names without the
中华人民共和国 prefix and article numbers as integers (第三十九条 = 第39条). law_only: the answer names the
reference's law at all. An answer citing several articles is credited if one of its first MAX_CITED distinct
articles matches (a lawyer reading it finds the right article there), but not for a longer list: a model that
enumerates 第二十七条、第二十八条、……第三十八条 has not said which article governs. Law names count with or without 《》 (the names
known from laws.db; see data.citations).
"""

from __future__ import annotations

from seektune.data.citations import LawNames, citations


MAX_CITED = 3


def citation_scores(answer: str, reference: str, names: LawNames | None = None) -> dict[str, float] | None:
    """None when the reference cites nothing (the example does not count for this metric)."""
    wanted = [c for c in citations(reference, names) if c.law]
    if not wanted:
        return None
    target = wanted[0]
    found = citations(answer, names)
    articles = list(dict.fromkeys((c.law, c.article, c.sub) for c in found if c.article is not None))
    exact = (target.law, target.article, target.sub) in articles[:MAX_CITED]
    law_only = any(c.law == target.law for c in found)
    return {"citation_exact": float(exact), "citation_law": float(law_only)}
