"""Replay: every step mixes rows of the earlier tasks' data in with the new task's rows.

Of a step's R row slots, floor((s+1)·ratio·R) - floor(s·ratio·R) are replayed at step s, so exactly `ratio` of
all rows are replayed over the run; the others continue the new task's epochs (each a seeded permutation), which
therefore take 1 / (1 - ratio) times the steps. With packing, a replayed row is packed like the new ones (drawn
samples added while they fit in max_length), so `ratio` is also about the share of samples. Which replayed samples a step gets is drawn from a generator
seeded by (seed, step): uniformly, or, with `prioritized`, by rank of each sample's current loss,
p_i ~ rank_i^-alpha with rank 1 the highest loss (rank-based prioritised replay), the losses recomputed every
`refresh_every` steps. A step's rows are thus a pure function of (seed, step, losses); the losses are the only
state a checkpoint must carry.
"""

from __future__ import annotations

import math
import random

import torch

from seektune.data.batching import Row, collate, epoch_order
from seektune.train.objectives.causal_lm import CausalLMObjective


def rank_probabilities(losses: list[float], alpha: float) -> list[float]:
    """p_i = rank_i^-alpha / sum_j rank_j^-alpha, rank 1 = highest loss (ties broken by index)."""
    order = sorted(range(len(losses)), key=lambda i: (-losses[i], i))
    raw = [0.0] * len(losses)
    for rank, i in enumerate(order, start=1):
        raw[i] = rank ** -alpha
    total = sum(raw)
    return [r / total for r in raw]


class ReplayPlan:
    """A step plan (see seektune.train.step_plan) over the new task's rows plus replayed rows."""

    def __init__(self, rows: list[Row], replay_rows: list[Row], ratio: float, micro_batch: int, accumulation: int,
                 processes: int, seed: int, prioritized: bool = False, alpha: float = 0.7, refresh_every: int = 50,
                 pack_to: int | None = None):
        if not replay_rows:
            raise ValueError("replay needs at least one row of earlier data")
        self.rows, self.replay_rows, self.ratio = rows, replay_rows, ratio
        self.micro_batch, self.processes, self.seed = micro_batch, processes, seed
        self.per_step = accumulation * processes
        self.slots = micro_batch * self.per_step
        self.steps_per_epoch = max(1, math.ceil(len(rows) / (self.slots * (1 - ratio))))
        self.prioritized, self.alpha, self.refresh_every = prioritized, alpha, refresh_every
        self.losses: list[float] | None = None
        self.probabilities: list[float] | None = None
        self.pack_to = pack_to
        self.last_replayed = self.last_replayed_samples = 0
        self._order_epoch, self._order = -1, []

    def replayed_before(self, step: int) -> int:
        return math.floor(step * self.ratio * self.slots + 1e-9)

    def _new_row(self, position: int) -> Row:
        epoch, i = divmod(position, len(self.rows))
        if epoch != self._order_epoch:
            self._order_epoch, self._order = epoch, epoch_order(len(self.rows), self.seed, epoch)
        return self.rows[self._order[i]]

    def step(self, step: int, rank: int) -> tuple[list[list[Row]], int]:
        """(this process's micro-batches, supervised tokens of the whole step across processes)."""
        n_replay = self.replayed_before(step + 1) - self.replayed_before(step)
        start = step * self.slots - self.replayed_before(step)
        picked = [self._new_row(start + k) for k in range(self.slots - n_replay)]
        rng = random.Random(f"replay/{self.seed}/{step}")
        replayed = [self._replay_row(rng) for _ in range(n_replay)]
        picked += [row for row, _ in replayed]
        rng.shuffle(picked)   # replayed rows spread over the step's micro-batches
        self.last_replayed, self.last_replayed_samples = n_replay, sum(n for _, n in replayed)
        batches = [picked[i * self.micro_batch:(i + 1) * self.micro_batch] for i in range(self.per_step)]
        total = sum(r.supervised for b in batches for r in b)
        return batches[rank::self.processes], total

    def _draw(self, rng: random.Random) -> Row:
        weights = self.probabilities or [1.0] * len(self.replay_rows)
        return self.replay_rows[rng.choices(range(len(self.replay_rows)), weights)[0]]

    def _replay_row(self, rng: random.Random) -> tuple[Row, int]:
        """One replayed row and how many samples it packs: drawn samples while they fit in `pack_to`."""
        row = self._draw(rng)
        if self.pack_to is None:
            return row, 1
        parts = [row]
        used = len(row.input_ids)
        while True:
            nxt = self._draw(rng)
            if used + len(nxt.input_ids) > self.pack_to:
                break
            parts.append(nxt)
            used += len(nxt.input_ids)
        return _concat_rows(parts), len(parts)

    def needs_refresh(self, step: int) -> bool:
        """Before optimizer step `step` (0-based): time to recompute the replayed samples' losses?"""
        return self.prioritized and (self.losses is None or step % self.refresh_every == 0)

    def set_losses(self, losses: list[float]) -> None:
        if len(losses) != len(self.replay_rows):
            raise ValueError(f"{len(losses)} losses for {len(self.replay_rows)} replayed rows")
        self.losses = [float(x) for x in losses]
        self.probabilities = rank_probabilities(self.losses, self.alpha)

    def state_dict(self) -> dict:
        return {"losses": self.losses}

    def load_state_dict(self, state: dict) -> None:
        if state.get("losses") is not None:
            self.set_losses(state["losses"])


def row_losses(model, rows: list[Row], pad_id: int, device, rank: int = 0, processes: int = 1):
    """Each row's mean token cross-entropy under `model` (no gradients), as a float64 tensor with this process's
    share filled in (rows rank, rank + processes, ...) and zeros elsewhere: sum it over processes."""
    objective = CausalLMObjective(model)
    out = torch.zeros(len(rows), dtype=torch.float64, device=device)
    training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(rank, len(rows), processes):
            batch = {k: v.to(device) for k, v in collate([rows[i]], pad_id, packed=False).items()}
            loss_sum, tokens = objective(**batch)
            out[i] = (loss_sum / tokens.clamp(min=1)).double()
    model.train(training)
    return out


def _concat_rows(rows: list[Row]) -> Row:
    """Rows of one sample each packed into one (positions restart per sample, as packing does)."""
    weighted = any(r.weights is not None for r in rows)
    return Row([t for r in rows for t in r.input_ids], [t for r in rows for t in r.targets],
               [t for r in rows for t in r.position_ids],
               [w for r in rows for w in (r.weights or [1.0] * len(r.input_ids))] if weighted else None)
