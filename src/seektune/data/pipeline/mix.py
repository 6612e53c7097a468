"""Weighted mixing with exact proportions, streamed: counts per source are fixed first (largest remainder),
then each source contributes a seeded random subset, interleaved in a seeded random order.

The in-training counterpart, re-weighting domains from eval loss, is `seektune.train.domain_sampling`.
"""

from __future__ import annotations

import math
import random


def exact_counts(weights: list[float], total: int) -> list[int]:
    """Integers summing to `total`, each within 1 of weight * total (largest remainder method)."""
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"mix weights must be >= 0 with a positive sum, got {weights}")
    shares = [w / sum(weights) * total for w in weights]
    counts = [math.floor(s) for s in shares]
    order = sorted(range(len(shares)), key=lambda i: (counts[i] - shares[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def largest_total(weights: list[float], sizes: list[int]) -> int:
    """The largest mix that needs no source more than once."""
    norm = [w / sum(weights) for w in weights]
    total = min(math.floor(round(size / w, 6)) for size, w in zip(sizes, norm) if w > 0)
    while any(c > s for c, s in zip(exact_counts(weights, total), sizes)):
        total -= 1
    return total


def pick_indices(size: int, count: int, rng: random.Random) -> list[int]:
    """`count` indices of a source with `size` records: whole passes when it must repeat, then a sample."""
    passes, rest = divmod(count, size) if size else (0, 0)
    if size == 0 and count:
        raise ValueError("a source with no records cannot contribute to the mix")
    chosen = [i for _ in range(passes) for i in range(size)] + rng.sample(range(size), rest)
    return sorted(chosen)


def interleave(counts: list[int], rng: random.Random) -> list[int]:
    order = [i for i, c in enumerate(counts) for _ in range(c)]
    rng.shuffle(order)
    return order
