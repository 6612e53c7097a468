"""Weighted mixing with exact proportions, streamed: counts per source are fixed first (largest remainder),
then each source contributes a seeded random subset, interleaved in a seeded random order.

`DomainWeights` is the in-training counterpart: the loop calls `update(per_domain_eval_loss)` after each
evaluation and samples the next steps' rows from domains by the returned weights.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field


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


@dataclass
class DomainWeights:
    """Online domain re-weighting from per-domain validation loss (exponentiated gradient, as in DoReMi's
    update with the first evaluation as the reference): domains whose loss is falling slower than the
    others gain weight. `smoothing` mixes in the uniform distribution so no domain starves."""

    weights: dict[str, float]
    step_size: float = 1.0
    smoothing: float = 0.1
    reference: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        total = sum(self.weights.values())
        if total <= 0:
            raise ValueError("domain weights must have a positive sum")
        self.weights = {k: v / total for k, v in self.weights.items()}

    def update(self, losses: dict[str, float]) -> dict[str, float]:
        missing = sorted(set(self.weights) - set(losses))
        if missing:
            raise ValueError(f"no eval loss for domains {missing}; give each domain an eval file")
        for name in self.weights:
            self.reference.setdefault(name, losses[name])
        excess = {k: losses[k] / self.reference[k] for k in self.weights}  # scale-free across domains
        raw = {k: self.weights[k] * math.exp(self.step_size * (excess[k] - 1.0)) for k in self.weights}
        total = sum(raw.values())
        k = len(raw)
        self.weights = {name: (1 - self.smoothing) * v / total + self.smoothing / k for name, v in raw.items()}
        return dict(self.weights)

    def state_dict(self) -> dict:
        return {"weights": self.weights, "reference": self.reference}

    def load_state_dict(self, state: dict) -> None:
        self.weights, self.reference = dict(state["weights"]), dict(state["reference"])
