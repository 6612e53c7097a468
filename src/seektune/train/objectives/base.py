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
from seektune.data.preference import PairRow, collate_pairs


class Objective(nn.Module):
    name = "objective"
    unit = "tok"   # what one unit of the loss is (the progress bar's rate): tokens, pairs, sampled answers

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.images = None   # a vision-language model's processor (models.vision.ProcessorImages)

    def collate(self, rows: list[Row], pad_id: int, packed: bool) -> dict[str, torch.Tensor]:
        """Padded token tensors, plus the image processor's tensors for the rows' images in token order (the
        model puts image i's features at its i-th run of image tokens)."""
        batch = collate(rows, pad_id, packed)
        refs = [ref for r in rows for ref in r.images]
        if refs:
            batch.update(self.images.pixel_values(refs))
        return batch

    def describe(self) -> str:
        """One line for the run summary."""
        return self.name

    def forward(self, **batch) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def pop_metrics(self, evaluation: bool = False) -> dict:
        """Objective-specific figures of the training (or evaluation) batches since the last call, logged with
        the step or the evaluation; none by default."""
        return {}

    def own_parameters(self) -> dict[str, nn.Parameter]:
        """Weights of the objective itself, outside the model (CLIP's projections and temperature): trained,
        checkpointed and saved with the run."""
        return {n: p for n, p in self.named_parameters() if p.requires_grad and not n.startswith("model.")}

    def save_beside(self, directory) -> None:
        """Write the objective's own weights next to the saved model (nothing by default)."""


class PairStats:
    """Running means of a pairwise objective's scores (chosen, rejected, margin, share chosen > rejected), kept
    apart for training and evaluation passes and reset when read."""

    def __init__(self, accuracy_name: str):
        self.accuracy_name = accuracy_name
        self._sums = {True: torch.zeros(4, dtype=torch.float64), False: torch.zeros(4, dtype=torch.float64)}

    def add(self, training: bool, chosen: torch.Tensor, rejected: torch.Tensor) -> None:
        c, r = chosen.detach().double().cpu(), rejected.detach().double().cpu()
        self._sums[training] += torch.stack([c.sum(), r.sum(), (c > r).double().sum(), torch.tensor(len(c))])

    def pop(self, evaluation: bool) -> dict:
        sums = self._sums[not evaluation]
        chosen, rejected, correct, pairs = sums.tolist()
        sums.zero_()
        if not pairs:
            return {}
        prefix = "eval_" if evaluation else ""
        return {f"{prefix}reward_chosen": chosen / pairs, f"{prefix}reward_rejected": rejected / pairs,
                f"{prefix}reward_margin": (chosen - rejected) / pairs,
                f"{prefix}{self.accuracy_name}": correct / pairs}


class PairwiseObjective(Objective):
    """An objective on preference pairs (DPO family, reward model): batches hold the chosen answers, then the
    rejected ones; forward records each pair's two scores with `self._stats.add(...)`."""

    unit = "pairs"
    accuracy_name = "pair_accuracy"

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self._stats = PairStats(self.accuracy_name)

    def collate(self, rows: list[PairRow], pad_id: int, packed: bool) -> dict[str, torch.Tensor]:
        return collate_pairs(rows, pad_id)

    def pop_metrics(self, evaluation: bool = False) -> dict:
        """Mean chosen and rejected scores, margin and accuracy (chosen > rejected) since the last call."""
        return self._stats.pop(evaluation)
