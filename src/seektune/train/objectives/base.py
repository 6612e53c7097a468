"""What the loop asks of an objective. An objective is an nn.Module holding the model, so the engine (DDP, FSDP,
DeepSpeed) wraps one forward pass; it turns rows into a batch and a batch into a summed loss.

Contract: `collate(rows, pad_id, packed)` builds the batch from rows of the dataset (each row has `.supervised`,
the units the loss is normalised by: answer tokens for CE, pairs for a preference loss); `forward(**batch)`
returns (sum of per-unit losses, number of units). The loop divides each optimizer step's summed loss by the
step's units across every micro-batch and process, so accumulation and data parallelism do not change the
gradient. Penalties on parameters (EWC, L2-SP, AdaLoRA's orthogonality) are StepHooks, not objectives.
"""

from __future__ import annotations

import torch
from torch import nn

from seektune.data.batching import Row, collate


class Objective(nn.Module):
    name = "objective"
    unit = "tok"   # what one unit of the loss is (the progress bar's rate): tokens, pairs, sampled answers

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def collate(self, rows: list[Row], pad_id: int, packed: bool) -> dict[str, torch.Tensor]:
        return collate(rows, pad_id, packed)

    def describe(self) -> str:
        """One line for the run summary."""
        return self.name

    def forward(self, **batch) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def pop_metrics(self, evaluation: bool = False) -> dict:
        """Objective-specific figures of the training (or evaluation) batches since the last call, logged with
        the step or the evaluation; none by default."""
        return {}
