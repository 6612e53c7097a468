"""Text repair and record filters used by `seektune data clean`.

Repairs apply to every text field: Unicode normalisation (NFKC by default: full-width ASCII and compatibility
forms folded, which Chinese web text needs), removal of control/invalid characters by a configurable
pattern, and whitespace repair. Filters look at the whole record and return a reason to drop it, or None.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bs4 import BeautifulSoup

# C0/C1 controls except tab and newline, zero-width and bidi marks, lone surrogates, the replacement character
DEFAULT_REMOVE = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060\ufeff\ufffd\ud800-\udfff]"
_NOT_LETTER = re.compile(r"[\W\d_]+", re.UNICODE)


@dataclass
class Repair:
    normal_form: str | None = "NFKC"
    remove_pattern: str = DEFAULT_REMOVE

    def __post_init__(self) -> None:
        if self.normal_form not in (None, "NFC", "NFKC", "NFD", "NFKD"):
            raise ValueError(f"normal form must be NFC, NFKC, NFD or NFKD, got {self.normal_form!r}")
        try:
            self._remove = re.compile(self.remove_pattern)
        except re.error as exc:
            raise ValueError(f"remove pattern {self.remove_pattern!r} is not a valid regex: {exc}") from None

    def __call__(self, text: str) -> str:
        if self.normal_form:
            text = unicodedata.normalize(self.normal_form, text)
        text = self._remove.sub("", text)
        return repair_whitespace(text)


def repair_whitespace(text: str) -> str:
    """CRLF to LF, runs of spaces/tabs to one space, no trailing spaces, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u3000", " ").replace("\xa0", " ")
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(html: str) -> tuple[str, str]:
    """(title, visible text) of an HTML page: scripts, styles, navigation and forms dropped, blocks on lines."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer", "form", "iframe", "svg"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    if soup.title:
        soup.title.decompose()
    return title, repair_whitespace(soup.get_text("\n"))


def html_files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix.lower() in (".html", ".htm"))
        elif p.suffix.lower() in (".html", ".htm"):
            out.append(p)
    return out


def quality_problem(text: str, min_letter_ratio: float = 0.5, max_repeated_line_ratio: float = 0.3,
                    max_char_run: int = 30) -> str | None:
    """Cheap heuristics in the spirit of Gopher/C4 rules: mostly symbols, boilerplate lines repeated,
    or a single character repeated (keyboard mash, separators)."""
    visible = len("".join(text.split()))
    if not visible:
        return "empty text"
    if len(_NOT_LETTER.sub("", text)) / visible < min_letter_ratio:
        return "mostly symbols or digits"
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) >= 4:
        most = Counter(lines).most_common(1)[0][1]
        if most / len(lines) > max_repeated_line_ratio and most > 1:
            return "repeated lines"
    if re.search(r"(.)\1{%d,}" % max_char_run, text):
        return f"a character repeated over {max_char_run} times"
    return None


def windows(ids: list[int], window: int, stride: int) -> list[tuple[int, int]]:
    """Token spans [start, end) covering `ids` with `window` tokens every `stride` tokens; the last span ends
    at the end (so no tail is lost)."""
    if stride <= 0 or stride > window:
        raise ValueError(f"stride must be between 1 and the window ({window}), got {stride}")
    if len(ids) <= window:
        return [(0, len(ids))]
    spans, start = [], 0
    while start + window < len(ids):
        spans.append((start, start + window))
        start += stride
    spans.append((max(0, len(ids) - window), len(ids)))
    return spans
