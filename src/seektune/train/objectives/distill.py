"""Knowledge distillation on the answer tokens: the teacher's next-token distribution at every supervised
position, matched by the student with forward KL, reverse KL or the generalised Jensen-Shannon divergence at a
temperature, mixed with the cross-entropy on the answers:

  loss_t = alpha * D(teacher_t, student_t) + (1 - alpha) * CE_t,   D summed over the vocabulary

Both heads are applied only at supervised positions (as in the CE objective), so the teacher's logits never
materialise for prompt tokens. D follows TRL's `GKDTrainer.generalized_jsd_loss` exactly (beta 0: forward KL,
1: reverse KL; no T^2 factor), which a test checks. The teacher is frozen, in eval mode, and not part of the
module tree: checkpoints and the final artifact hold the student only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seektune.data.render import IGNORE
from seektune.objective_config import ObjectiveConfig
from seektune.train.objectives.base import Objective
from seektune.train.objectives.causal_lm import answer_logits, supports_selective_head


def divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, kind: str, temperature: float = 1.0,
               jsd_beta: float = 0.5) -> torch.Tensor:
    """Per-position divergence (summed over the vocabulary) between (N, V) logits."""
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    if kind == "forward_kl":
        return F.kl_div(student, teacher, reduction="none", log_target=True).sum(-1)
    if kind == "reverse_kl":
        return F.kl_div(teacher, student, reduction="none", log_target=True).sum(-1)
    mixture = torch.logsumexp(torch.stack([student + math.log1p(-jsd_beta), teacher + math.log(jsd_beta)]), dim=0)
    return (jsd_beta * F.kl_div(mixture, teacher, reduction="none", log_target=True)
            + (1 - jsd_beta) * F.kl_div(mixture, student, reduction="none", log_target=True)).sum(-1)


class DistillationObjective(Objective):
    name = "kd"

    def __init__(self, model: nn.Module, cfg: ObjectiveConfig, teacher: nn.Module):
        super().__init__(model)
        self.cfg = cfg
        self._teacher = [teacher.eval().requires_grad_(False)]   # a list: not a submodule, never saved or wrapped
        self.selective = supports_selective_head(model) and supports_selective_head(teacher)
        self._sums = {True: torch.zeros(3, dtype=torch.float64), False: torch.zeros(3, dtype=torch.float64)}

    def describe(self) -> str:
        c = self.cfg
        return (f"kd (teacher {c.teacher}, {c.divergence}"
                + (f" beta {c.jsd_beta}" if c.divergence == "jsd" else "")
                + f", temperature {c.temperature}, alpha {c.alpha})")

    def forward(self, input_ids, targets, position_ids, attention_mask=None, weights=None):
        teacher = self._teacher[0]
        if next(teacher.parameters()).device != input_ids.device:
            teacher.to(input_ids.device)
        supervised = targets != IGNORE
        student_logits = answer_logits(self.model, input_ids, position_ids, attention_mask, supervised,
                                        self.selective)
        with torch.no_grad():
            teacher_logits = answer_logits(teacher, input_ids, position_ids, attention_mask, supervised,
                                            self.selective)
        kd = divergence(student_logits, teacher_logits, self.cfg.divergence, self.cfg.temperature, self.cfg.jsd_beta)
        ce = F.cross_entropy(student_logits.float(), targets[supervised], reduction="none")
        losses = self.cfg.alpha * kd + (1 - self.cfg.alpha) * ce
        if weights is not None:
            losses = losses * weights[supervised]
        self._sums[self.training] += torch.tensor([kd.detach().sum().item(), ce.detach().sum().item(), len(kd)],
                                                  dtype=torch.float64)
        return losses.sum(), supervised.sum()

    def pop_metrics(self, evaluation: bool = False) -> dict:
        """Mean divergence to the teacher and mean cross-entropy per answer token since the last call."""
        sums = self._sums[not evaluation]
        kd, ce, n = sums.tolist()
        sums.zero_()
        prefix = "eval_" if evaluation else ""
        return {f"{prefix}kd_divergence": kd / n, f"{prefix}kd_cross_entropy": ce / n} if n else {}
