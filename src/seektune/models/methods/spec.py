"""What a tuning method is, as data: how it prepares the model, what it saves, how it joins the loop.

The loop, the artifact module and the parameter groups read these fields; none of them test a method's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from seektune.method_config import MethodConfig


@dataclass(frozen=True)
class PrepareContext:
    total_steps: int = 1        # AdaLoRA's rank schedule
    tokenizer_path: str = ""    # prompt tuning initialised from text


class StepHook:
    """Something the loop calls around each optimizer step: a penalty added to the loss (once per step,
    spread over its micro-batches), work after the step (it still sees the gradients), and state a checkpoint
    must carry for exact resume. Methods (AdaLoRA) and regularisers (EWC, L2-SP) are hooks."""

    name = "hook"

    def penalty(self) -> torch.Tensor | None:
        return None

    def after_optimizer_step(self, step: int) -> None:
        """`step` counts completed optimizer steps from 1."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def metrics(self) -> dict:
        """Entries for metrics.jsonl at each logged step (a penalty's value)."""
        return {}

    def summary(self) -> dict:
        """Entries for the run's result.json."""
        return {}


@dataclass(frozen=True)
class MethodSpec:
    name: str
    prepare: Callable[[nn.Module, MethodConfig, PrepareContext], nn.Module]
    artifact: str = "peft-adapter"   # the kind of final/ (seektune.artifacts.kinds): peft-adapter, full-model...
    mergeable: bool = False          # linear in the weights: `seektune merge` folds it into the base
    save: Callable[[nn.Module, MethodConfig, Path, str], None] | None = None  # None: model.save_pretrained
    quantization: Callable[[MethodConfig], Any] | None = None   # a transformers quantization config for the base
    hooks: Callable[[nn.Module, MethodConfig], StepHook] | None = None
    lr_multiplier: Callable[[str, MethodConfig], float] | None = None  # per trainable parameter name (LoRA+)
    moe_rewrite_disabled: Callable[[MethodConfig], bool] | None = None  # peft's DeepSeek MoE target rewrite off

    @property
    def adapter(self) -> bool:
        """What trains lives beside a frozen base, and final/ holds only that (not the whole model)."""
        return self.artifact != "full-model"

    def save_trained(self, model: nn.Module, cfg: MethodConfig, directory: Path, base_model: str) -> None:
        if self.save is not None:
            self.save(model, cfg, directory, base_model)
        else:
            model.save_pretrained(directory)

    def info(self, cfg: MethodConfig, base_model: str) -> dict:
        """The method record saved beside the artifact: how it was trained and how to load it."""
        return {"method": self.name, "mergeable": self.mergeable,
                "peft_moe_rewrite_disabled": bool(self.moe_rewrite_disabled and self.moe_rewrite_disabled(cfg)),
                "base_model_name_or_path": base_model}
