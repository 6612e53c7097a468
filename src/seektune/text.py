"""The one definition of Chinese (and other CJK) characters, shared by metrics, dedup and data statistics."""

from __future__ import annotations

import re

HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK unified ideographs, extension A, compatibility ideographs
KANA_HANGUL = "\u3040-\u30ff\uac00-\ud7af"       # Japanese kana and Korean syllables (no spaces between words)
HAN_CHAR = re.compile(f"[{HAN}]")


def has_cjk(text: str) -> bool:
    """True when the text holds a Chinese character (the switch between per-word and per-character scoring)."""
    return bool(HAN_CHAR.search(text))
