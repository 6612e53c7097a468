"""Domain terms for the term-weighted loss: find them in answer text and weight the tokens that spell them.

Matching is case-insensitive. A term edge that is an ASCII letter or digit must sit on a word boundary
("ACE" does not match inside "face"); CJK terms have no word boundaries and match anywhere. Longer terms win
where terms overlap. A token gets the weight when any of its characters falls inside a matched term, so a term
split across several tokens weights all of them, and a token that carries a leading space with the term's
first letters counts too.
"""

from __future__ import annotations

import re
from pathlib import Path

from seektune.errors import DataError


def _edge(term_char: str) -> bool:
    return term_char.isascii() and term_char.isalnum()


class TermMatcher:
    def __init__(self, terms: list[str]):
        terms = sorted({t.strip() for t in terms if t.strip()}, key=lambda t: (-len(t), t))
        if not terms:
            raise DataError("the term list is empty")
        self.terms = terms
        parts = [(r"(?<![A-Za-z0-9])" if _edge(t[0]) else "") + re.escape(t)
                 + (r"(?![A-Za-z0-9])" if _edge(t[-1]) else "") for t in terms]
        self.pattern = re.compile("|".join(parts), re.IGNORECASE)

    @classmethod
    def from_file(cls, path: str | Path) -> "TermMatcher":
        path = Path(path)
        if not path.is_file():
            raise DataError(f"train.term_file: {path} does not exist")
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start}); "
                            "save the term list as UTF-8") from None
        terms = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not terms:
            raise DataError(f"{path}: no terms (one term per line; lines starting with # are comments)")
        return cls(terms)

    def spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in self.pattern.finditer(text)]


def token_weights(offsets: list[tuple[int, int]], spans: list[tuple[int, int]], weight: float) -> list[float]:
    """Per-token weights: `weight` where a token's [start, end) overlaps a term span, else 1."""
    out = []
    for start, end in offsets:
        hit = any(start < s_end and s_start < end for s_start, s_end in spans)
        out.append(weight if hit else 1.0)
    return out
