"""Citation accuracy for legal answers: the law and article cited in the answer against the reference.

exact: the answer cites the reference's first (law, article) pair, comparing law names without the
中华人民共和国 prefix and article numbers as integers (第三十九条 = 第39条). law_only: the answer names the
reference's law at all. An answer citing several articles is credited if any matches (recall-style, as a
lawyer reading it would find the right article there).
"""

from __future__ import annotations

from seektune.data.citations import citations


def citation_scores(answer: str, reference: str) -> dict[str, float] | None:
    """None when the reference cites nothing (the example does not count for this metric)."""
    wanted = [c for c in citations(reference) if c.law]
    if not wanted:
        return None
    target = wanted[0]
    found = citations(answer)
    exact = any(c.law == target.law and c.article == target.article and c.sub == target.sub for c in found)
    law_only = any(c.law == target.law for c in found)
    return {"citation_exact": float(exact), "citation_law": float(law_only)}
