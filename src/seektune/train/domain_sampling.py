"""Training rows drawn per domain by weight, for multi-domain runs (general + legal + ...).

Each optimizer step draws its rows from a generator seeded by (seed, step) with the current domain weights,
so a step's batch is a pure function of (seed, step, weights): resume is exact when the weights are
restored from the checkpoint. Weights change only when `seektune.data.pipeline.mix.DomainWeights` updates
them from per-domain eval loss (data.domain_reweighting).
"""

from __future__ import annotations

import math
import random
from collections import Counter

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
