"""EWC and L2-SP: one penalty, weight/2 * sum_i F_i * (theta_i - theta*_i)^2, over what trains now.

theta* is where this run started (the earlier tasks' final weights); F is the diagonal Fisher of the earlier
tasks for EWC and 1 for L2-SP. What "theta - theta*" is depends on the method:
  full / freeze   the trained weights minus their values at the start
  lora            each adapted weight's change, scale * B @ A (minus its value at the start, which is zero for
                  the default init and not for PiSSA/OLoRA), against the Fisher of the base weight it changes
Any other trainable tensor of a peft model (a `modules_to_save` head) counts as a whole weight.
"""

from __future__ import annotations

import torch
from torch import nn

from seektune.errors import ConfigError
from seektune.models.methods import StepHook

_PEFT_PREFIX = "base_model.model."


def plain_name(peft_name: str) -> str:
    """A peft model's parameter name as the plain transformers model calls it."""
    name = peft_name[len(_PEFT_PREFIX):] if peft_name.startswith(_PEFT_PREFIX) else peft_name
    return name.replace(".modules_to_save.default", "").replace(".base_layer", "")


def _lora_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Module name -> peft LoRA layer that trains the default adapter."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # peft is a dependency; without it there are no LoRA layers to find
        return {}
    return {name: m for name, m in model.named_modules()
            if isinstance(m, LoraLayer) and "default" in m.lora_A and m.lora_A["default"].weight.requires_grad}


class AnchorPenalty(StepHook):
    """`importance`: plain parameter name -> Fisher (EWC); None: 1 everywhere (L2-SP)."""

    def __init__(self, name: str, model: nn.Module, weight: float, importance: dict[str, torch.Tensor] | None):
        self.name, self.weight = name, weight
        self.last = 0.0
        self.lora: list[tuple[nn.Module, torch.Tensor | None, torch.Tensor | None]] = []
        self.whole: list[tuple[nn.Parameter, torch.Tensor, torch.Tensor | None]] = []
        lora_params: set[int] = set()
        for module_name, layer in _lora_layers(model).items():
            lora_params.update(id(p) for p in layer.lora_A["default"].parameters())
            lora_params.update(id(p) for p in layer.lora_B["default"].parameters())
            with torch.no_grad():
                start = layer.get_delta_weight("default").detach().clone()
            start = start if start.abs().max() > 0 else None
            self.lora.append((layer, start, self._importance(importance, plain_name(module_name) + ".weight",
                                                             layer.get_base_layer().weight)))
        for param_name, p in model.named_parameters():
            if p.requires_grad and id(p) not in lora_params:
                self.whole.append((p, p.detach().clone(), self._importance(importance, plain_name(param_name), p)))
        if not self.lora and not self.whole:
            raise ConfigError(f"continual.{name}: nothing trainable to anchor")

    def _importance(self, importance: dict | None, key: str, like: torch.Tensor) -> torch.Tensor | None:
        if importance is None:
            return None
        if key not in importance:
            raise ConfigError(f"continual.{self.name}: the earlier tasks' Fisher has no entry for {key}; it was "
                              "computed on another architecture (delete fisher.safetensors to recompute it)")
        value = importance[key]
        if value.shape != like.shape:
            raise ConfigError(f"continual.{self.name}: Fisher of {key} has shape {tuple(value.shape)}, the weight "
                              f"{tuple(like.shape)}")
        return value.to(device=like.device, dtype=torch.float32)

    def penalty(self) -> torch.Tensor:
        total = None
        for layer, start, f in self.lora:
            delta = layer.get_delta_weight("default").float()
            if start is not None:
                delta = delta - start
            term = (delta.square() * f).sum() if f is not None else delta.square().sum()
            total = term if total is None else total + term
        for p, start, f in self.whole:
            d2 = (p.float() - start).square()
            term = (d2 * f).sum() if f is not None else d2.sum()
            total = term if total is None else total + term
        value = self.weight / 2 * total
        self.last = float(value.detach())
        return value

    def metrics(self) -> dict:
        return {f"{self.name}_penalty": self.last}

    def summary(self) -> dict:
        return {f"{self.name}_penalty": self.last}
