"""A Bradley-Terry reward model on preference pairs: the LM with a scalar head (transformers'
`...ForSequenceClassification` with one label) scores the chosen answer above the rejected one,
loss = -log sigmoid(r_chosen - r_rejected), optionally plus TRL's centring penalty on (r_chosen + r_rejected)^2.

The score is the model's own forward (the head at the last non-pad token), so a saved reward model scores the
same with plain transformers/peft as it did in training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seektune.objective_config import ObjectiveConfig
from seektune.train.objectives.base import PairwiseObjective


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor, margin_weight: float = 0.0) -> torch.Tensor:
    """Loss per pair from the two scores."""
    loss = -F.logsigmoid(chosen - rejected)
    if margin_weight:
        loss = loss + margin_weight * (chosen + rejected) ** 2
    return loss


class RewardObjective(PairwiseObjective):
    """Logs the mean scores of chosen and rejected answers, margin and pair accuracy."""

    name = "reward"
    accuracy_name = "pair_accuracy"

    def __init__(self, model: nn.Module, cfg: ObjectiveConfig):
        super().__init__(model)
        self.cfg = cfg

    def describe(self) -> str:
        return f"reward (Bradley-Terry on pairs, centring weight {self.cfg.margin_weight})"

    def forward(self, input_ids, targets, position_ids, attention_mask=None, weights=None):
        scores = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, 0]
        chosen, rejected = scores.float().chunk(2)
        loss = bradley_terry_loss(chosen, rejected, self.cfg.margin_weight)
        self._stats.add(self.training, chosen, rejected)
        return loss.sum(), torch.tensor(len(loss), device=loss.device)
