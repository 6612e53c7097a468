"""The loop's step hooks as one: what the method adds (AdaLoRA) and the regularisers (EWC, L2-SP), in order."""

from __future__ import annotations

import torch

from seektune.models.methods import StepHook


class HookList:
    def __init__(self, hooks: list[StepHook]):
        names = [h.name for h in hooks]
        if len(set(names)) != len(names):
            raise ValueError(f"step hooks need distinct names (their checkpoint state is keyed by name): {names}")
        self.hooks = hooks

    def penalty(self) -> torch.Tensor | None:
        terms = [p for p in (h.penalty() for h in self.hooks) if p is not None]
        return sum(terms[1:], terms[0]) if terms else None

    def after_optimizer_step(self, step: int) -> None:
        for h in self.hooks:
            h.after_optimizer_step(step)

    def state_dict(self) -> dict:
        return {h.name: h.state_dict() for h in self.hooks}

    def load_state_dict(self, state: dict) -> None:
        for h in self.hooks:
            if h.name in state:
                h.load_state_dict(state[h.name])

    def metrics(self) -> dict:
        return {k: v for h in self.hooks for k, v in h.metrics().items()}

    def summary(self) -> dict:
        return {k: v for h in self.hooks for k, v in h.summary().items()}
