"""Training rows drawn per domain by weight, for multi-domain runs (general + legal + ...).

Each optimizer step draws its rows from a generator seeded by (seed, step) with the current domain weights,
so a step's batch is a pure function of (seed, step, weights): resume is exact when the weights are
restored from the checkpoint. Weights change only when `DomainWeights` updates them from per-domain eval
loss (data.domain_reweighting).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field

from seektune.data.batching import Row


def initial_weights(domains: dict[str, list[Row]], given: dict[str, float]) -> dict[str, float]:
    """Configured weights where given, else each domain's share of the rows; normalised."""
    total_rows = sum(len(rows) for rows in domains.values())
    raw = {d: given.get(d, len(rows) / total_rows) for d, rows in domains.items()}
    return {d: w / sum(raw.values()) for d, w in raw.items()}


class DomainStepPlan:
    def __init__(self, domains: dict[str, list[Row]], weights: dict[str, float], micro_batch: int,
                 accumulation: int, processes: int, seed: int):
        self.domains, self.weights = domains, dict(weights)
        self.names = sorted(domains)
        self.micro_batch, self.processes, self.seed = micro_batch, processes, seed
        self.per_step = accumulation * processes
        rows = sum(len(r) for r in domains.values())
        self.steps_per_epoch = max(1, math.ceil(rows / (micro_batch * self.per_step)))
        self.last_counts: Counter = Counter()

    def step(self, step: int, rank: int) -> tuple[list[list[Row]], int]:
        """(this process's micro-batches, supervised tokens of the whole step across processes)."""
        rng = random.Random(f"{self.seed}/{step}")
        picks = rng.choices(self.names, [self.weights[n] for n in self.names], k=self.per_step * self.micro_batch)
        self.last_counts = Counter(picks)
        rows = [self.domains[d][rng.randrange(len(self.domains[d]))] for d in picks]
        batches = [rows[i * self.micro_batch:(i + 1) * self.micro_batch] for i in range(self.per_step)]
        total = sum(r.supervised for b in batches for r in b)
        return batches[rank::self.processes], total


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
