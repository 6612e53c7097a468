"""What a method adds to the one loop beyond model preparation: a regulariser in the loss, work after each
optimizer step, and state that a checkpoint must carry for exact resume. Most methods add nothing.

AdaLoRA: peft's RankAllocator scores every singular value by its sensitivity (|w * grad|, smoothed) and masks
the least important ones until the average rank reaches target_r. It must see the gradients, so it runs after
optimizer.step() and before zero_grad(); its orthogonality regulariser keeps P and Q near-orthogonal so masking
a singular value is a clean rank cut. peft applies that regulariser only when the model computes the loss itself,
and the loop computes its own loss, so it is added here.
"""

from __future__ import annotations

import torch
from torch import nn

from seektune.method_config import MethodConfig


class MethodHooks:
    def regulariser(self) -> torch.Tensor | None:
        return None

    def after_optimizer_step(self, step: int) -> None:
        """`step` counts completed optimizer steps from 1."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def summary(self) -> dict:
        return {}


class AdaLoraHooks(MethodHooks):
    def __init__(self, peft_model: nn.Module):
        self.tuner = peft_model.base_model  # AdaLoraModel: update_and_allocate, rankallocator, peft_config
        self.adapter = self.tuner.trainable_adapter_name
        self.weight = self.tuner.peft_config[self.adapter].orth_reg_weight
        self.factors = [("lora_A" in n, p) for n, p in self.tuner.model.named_parameters()
                        if ("lora_A" in n or "lora_B" in n) and self.adapter in n]

    def regulariser(self) -> torch.Tensor | None:
        if not self.weight or not self.factors:
            return None
        total = 0.0
        for is_a, p in self.factors:  # P (lora_A, r x in) rows and Q (lora_B, out x r) columns near-orthonormal
            cov = p @ p.T if is_a else p.T @ p
            total = total + torch.linalg.matrix_norm(cov - torch.eye(cov.shape[0], device=p.device, dtype=p.dtype))
        return self.weight * total / len(self.factors)

    def after_optimizer_step(self, step: int) -> None:
        # peft counts steps from 0 (its schedule compares global_step with tinit and total_step - tfinal)
        self.tuner.update_and_allocate(step - 1)

    def state_dict(self) -> dict:
        allocator = self.tuner.rankallocator
        return {"ipt": allocator.ipt, "exp_avg_ipt": allocator.exp_avg_ipt, "exp_avg_unc": allocator.exp_avg_unc,
                "rank_pattern": self.tuner.peft_config[self.adapter].rank_pattern}

    def load_state_dict(self, state: dict) -> None:
        allocator = self.tuner.rankallocator
        allocator.ipt, allocator.exp_avg_ipt, allocator.exp_avg_unc = state["ipt"], state["exp_avg_ipt"], \
            state["exp_avg_unc"]
        self.tuner.peft_config[self.adapter].rank_pattern = state["rank_pattern"]

    def summary(self) -> dict:
        """Ranks left per adapted matrix after reallocation (the budget's outcome)."""
        pattern = self.tuner.peft_config[self.adapter].rank_pattern or {}
        return {name: int(sum(mask)) for name, mask in pattern.items()}


def hooks_for(model: nn.Module, cfg: MethodConfig) -> MethodHooks:
    return AdaLoraHooks(model) if cfg.name == "adalora" else MethodHooks()
