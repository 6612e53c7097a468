"""Which rows each process uses for each optimizer step: uniform epochs over all rows, or per-domain weighted
sampling when the train files name domains. Either way a step's rows are a pure function of (seed, step[,
weights]), so a checkpoint needs only the step number (and the weights) to know where the data is."""

from __future__ import annotations

import math

from seektune.config import Config
from seektune.data.batching import Row, epoch_order
from seektune.train.domain_sampling import DomainStepPlan, DomainWeights, initial_weights


class StepPlan:
    """Which rows each process uses for each optimizer step."""

    def __init__(self, rows: list[Row], micro_batch: int, accumulation: int, processes: int, seed: int):
        self.rows, self.micro_batch, self.seed = rows, micro_batch, seed
        self.per_step = accumulation * processes
        self.processes = processes
        self.micro_batches_per_epoch = math.ceil(len(rows) / micro_batch)
        self.steps_per_epoch = math.ceil(self.micro_batches_per_epoch / self.per_step)
        self._order_epoch, self._order = -1, []

    def _micro_batch(self, epoch: int, index: int) -> list[Row]:
        if epoch != self._order_epoch:
            self._order_epoch, self._order = epoch, epoch_order(len(self.rows), self.seed, epoch)
        index %= self.micro_batches_per_epoch  # the last step of an epoch wraps around to stay full
        picked = self._order[index * self.micro_batch:(index + 1) * self.micro_batch]
        return [self.rows[i] for i in picked]

    def step(self, step: int, rank: int) -> tuple[list[list[Row]], int]:
        """(this process's micro-batches, supervised tokens of the whole step across processes)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        batches = [self._micro_batch(epoch, k * self.per_step + j) for j in range(self.per_step)]
        total = sum(r.supervised for b in batches for r in b)
        return batches[rank::self.processes], total


def make_plan(cfg: Config, data, processes: int):
    """Uniform epochs over all rows, or per-domain weighted sampling when the train files name domains."""
    args = (cfg.train.micro_batch_size, cfg.train.gradient_accumulation_steps, processes, cfg.train.seed)
    if not data.train_domains:
        return StepPlan(data.train, *args), None
    given = {f.domain: f.weight for f in cfg.data.train if f.weight is not None}
    weights = initial_weights(data.train_domains, given)
    reweighter = DomainWeights(weights, cfg.data.reweight_step_size, cfg.data.reweight_smoothing) \
        if cfg.data.domain_reweighting else None
    return DomainStepPlan(data.train_domains, weights, *args), reweighter
