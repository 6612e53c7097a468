"""Preference optimisation on the one loop: DPO (sigmoid), IPO and hinge against a reference model, and the
reference-free SimPO and ORPO. One unit is one pair; the loop normalises by pairs as it does by tokens for CE.

The reference is the base with the adapter switched off (peft's `disable_adapter`), so no second copy of the
weights is held (TRL's rule for a new adapter); to start from a tuned adapter, merge it first (`seektune merge`)
and train a new adapter on the merged model, which is then the reference.
Sequence log-probabilities come from the output head applied only at answer positions, as in the CE objective.
Formulas follow the papers and TRL's `DPOTrainer` / `CPOTrainer` / `ORPOTrainer`: IPO, SimPO and ORPO use
log-probabilities averaged over the answer's tokens, DPO and hinge their sums. `sft_weight` adds the chosen
answers' per-token cross-entropy (RPO, TRL's `rpo_alpha`), which keeps DPO from lowering the chosen answers'
likelihood along with the rejected ones'.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seektune.objective_config import REFERENCE_FREE, ObjectiveConfig
from seektune.data.render import IGNORE
from seektune.train.objectives.base import PairwiseObjective
from seektune.train.objectives.causal_lm import answer_logits, supports_selective_head


def token_logps(model: nn.Module, input_ids, targets, attention_mask, position_ids,
                selective_head: bool = True) -> torch.Tensor:
    """log p(target) at every supervised position (row-major order of `targets != IGNORE`)."""
    supervised = targets != IGNORE
    logits = answer_logits(model, input_ids, position_ids, attention_mask, supervised, selective_head)
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[supervised][:, None])[:, 0]


def sequence_logps(model: nn.Module, input_ids, targets, attention_mask, position_ids,
                   selective_head: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of log p(target) over each row's supervised tokens, number of those tokens) per row."""
    logps = token_logps(model, input_ids, targets, attention_mask, position_ids, selective_head)
    supervised = targets != IGNORE
    sums = torch.zeros(input_ids.shape[0], dtype=logps.dtype, device=logps.device)
    return sums.index_add(0, supervised.nonzero()[:, 0], logps), supervised.sum(dim=1)


def preference_loss(cfg: ObjectiveConfig, chosen: torch.Tensor, rejected: torch.Tensor, chosen_n: torch.Tensor,
                    rejected_n: torch.Tensor, ref_chosen: torch.Tensor | None = None,
                    ref_rejected: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss per pair, chosen reward, rejected reward) from summed answer log-probs (policy and reference)."""
    beta = cfg.beta
    if cfg.loss in REFERENCE_FREE:
        chosen_mean, rejected_mean = chosen / chosen_n, rejected / rejected_n
        if cfg.loss == "simpo":
            loss = -F.logsigmoid(beta * (chosen_mean - rejected_mean) - cfg.simpo_gamma)
        else:   # orpo: NLL of the chosen answer + beta x log-sigmoid of the log odds ratio
            log_odds = (chosen_mean - rejected_mean) - (torch.log1p(-torch.exp(chosen_mean))
                                                         - torch.log1p(-torch.exp(rejected_mean)))
            loss = -chosen_mean - beta * F.logsigmoid(log_odds)
        if cfg.sft_weight:
            loss = loss + cfg.sft_weight * (-chosen_mean)
        return loss, beta * chosen_mean.detach(), beta * rejected_mean.detach()
    if cfg.loss == "ipo":
        chosen_ratio = chosen / chosen_n - ref_chosen / chosen_n
        rejected_ratio = rejected / rejected_n - ref_rejected / rejected_n
    else:
        chosen_ratio, rejected_ratio = chosen - ref_chosen, rejected - ref_rejected
    margin = chosen_ratio - rejected_ratio
    if cfg.loss == "sigmoid":
        loss = -F.logsigmoid(beta * margin)
    elif cfg.loss == "hinge":
        loss = torch.relu(1 - beta * margin)
    else:   # ipo
        loss = (margin - 1 / (2 * beta)) ** 2
    if cfg.sft_weight:
        loss = loss + cfg.sft_weight * (-chosen / chosen_n)
    return loss, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


class PreferenceObjective(PairwiseObjective):
    """Logs the mean rewards (beta x log-ratio to the reference), margin and preference accuracy."""

    name = "dpo"
    accuracy_name = "preference_accuracy"

    def __init__(self, model: nn.Module, cfg: ObjectiveConfig):
        super().__init__(model)
        self.cfg = cfg
        self.selective_head = supports_selective_head(model)

    def describe(self) -> str:
        reference = "none" if self.cfg.loss in REFERENCE_FREE else "the base with the adapter off"
        return f"dpo (loss {self.cfg.loss}, beta {self.cfg.beta}, reference: {reference})"

    def forward(self, input_ids, targets, position_ids, attention_mask=None, weights=None):
        logps, counts = sequence_logps(self.model, input_ids, targets, attention_mask, position_ids,
                                       self.selective_head)
        chosen, rejected = logps.chunk(2)
        chosen_n, rejected_n = counts.chunk(2)
        reference = (None, None)
        if self.cfg.loss not in REFERENCE_FREE:
            with torch.no_grad(), self.model.disable_adapter():
                ref, _ = sequence_logps(self.model, input_ids, targets, attention_mask, position_ids,
                                        self.selective_head)
            reference = ref.chunk(2)
        loss, chosen_reward, rejected_reward = preference_loss(self.cfg, chosen, rejected, chosen_n, rejected_n,
                                                               *reference)
        self._stats.add(self.training, chosen_reward, rejected_reward)
        return loss.sum(), torch.tensor(len(loss), device=loss.device)
