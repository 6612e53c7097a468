"""Rows and batches: pack samples into rows (or one sample per row), order them per epoch, collate to tensors.

Packed rows carry position_ids that restart at 0 for every sample and no attention mask; transformers then
builds a block-diagonal causal mask (masking_utils.find_packed_sequence_indices), so neither attention nor
positions cross samples. Targets are shifted per sample before packing, so no loss term crosses either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from seektune.data.render import IGNORE, Sample


@dataclass
class Row:
    input_ids: list[int]
    targets: list[int]
    position_ids: list[int]
    weights: list[float] | None = None
    images: list[str] = field(default_factory=list)   # the row's images in token order (vision-language models)

    @property
    def supervised(self) -> int:
        return sum(t != IGNORE for t in self.targets)


def _concat(samples: list[Sample]) -> Row:
    ids, targets, positions, weights, images = [], [], [], [], []
    for s in samples:
        images += s.images
        ids += s.input_ids
        targets += s.targets
        positions += list(range(len(s.input_ids)))
        weights += s.weights if s.weights is not None else [1.0] * len(s.input_ids)
    weighted = any(s.weights is not None for s in samples)
    return Row(ids, targets, positions, weights if weighted else None, images)


def pack(samples: list[Sample], max_length: int) -> list[Row]:
    """First-fit decreasing bin packing: few, full rows; deterministic for a given sample list."""
    order = sorted(range(len(samples)), key=lambda i: (-len(samples[i].input_ids), i))
    bins: list[list[int]] = []
    space: list[int] = []
    for i in order:
        n = len(samples[i].input_ids)
        for b, free in enumerate(space):
            if n <= free:
                bins[b].append(i)
                space[b] -= n
                break
        else:
            bins.append([i])
            space.append(max_length - n)
    return [_concat([samples[i] for i in sorted(b)]) for b in bins]


def unpacked(samples: list[Sample]) -> list[Row]:
    return [_concat([s]) for s in samples]


def epoch_order(n_rows: int, seed: int, epoch: int) -> list[int]:
    """The row order of one epoch, a pure function of (seed, epoch) so resume needs no sampler state."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n_rows, generator=generator).tolist()


def collate(rows: list[Row], pad_id: int, packed: bool, multiple_of: int = 8) -> dict[str, torch.Tensor]:
    """Pad rows to the longest (rounded up to `multiple_of`). Padding never gets a target.

    Packed: pad tokens form their own 'sequence' (positions restart at 0) and no attention_mask is passed.
    Padded: an attention_mask hides pad tokens.
    """
    width = max(len(r.input_ids) for r in rows)
    width = -(-width // multiple_of) * multiple_of
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    weighted = any(r.weights is not None for r in rows)
    weights = torch.ones((len(rows), width), dtype=torch.float32)
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        ids[i, :n] = torch.tensor(r.input_ids)
        targets[i, :n] = torch.tensor(r.targets)
        positions[i, :n] = torch.tensor(r.position_ids)
        positions[i, n:] = torch.arange(width - n)
        mask[i, :n] = 1
        if r.weights is not None:
            weights[i, :n] = torch.tensor(r.weights)
    batch = {"input_ids": ids, "targets": targets, "position_ids": positions}
    if not packed:
        batch["attention_mask"] = mask
    if weighted:
        batch["weights"] = weights
    return batch
