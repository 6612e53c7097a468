"""Input noise for robustness: typos a user would make, seeded per example so every model sees the same
perturbed prompt. English: adjacent-character swaps, deletions and duplications inside words; Chinese:
adjacent-character swaps and deletions (no spaces to respect)."""

from __future__ import annotations

import random

from seektune.data.images import PLACEHOLDER
from seektune.text import has_cjk


def add_typos(text: str, rate: float, seed: int) -> str:
    """Perturb about `rate` of the letters (at least one when the text has any); image placeholders stay whole."""
    if PLACEHOLDER in text:
        pieces = text.split(PLACEHOLDER)
        return PLACEHOLDER.join(add_typos(p, rate, seed + k) if any(c.isalpha() for c in p) else p
                                for k, p in enumerate(pieces))
    rng = random.Random(seed)
    chars = list(text)
    positions = [i for i, c in enumerate(chars) if c.isalpha()]
    if not positions:
        return text
    count = max(1, round(rate * len(positions)))
    ops = ("swap", "delete") if has_cjk(text) else ("swap", "delete", "double")
    for i in sorted(rng.sample(positions, min(count, len(positions))), reverse=True):
        op = rng.choice(ops)
        if op == "swap" and i + 1 < len(chars) and chars[i + 1].isalpha():
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif op == "delete":
            del chars[i]
        else:
            chars.insert(i, chars[i])
    return "".join(chars)
