"""The objective registry: `train.objective` names one builder here, the only place that name is looked up.

Adding an objective (DPO, distillation, a reward model): one module in this package with an Objective subclass
(and its collate, when its rows differ), one entry in OBJECTIVES, its name in TrainConfig.objective.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from seektune.config import Config
from seektune.errors import ConfigError
from seektune.train.objectives.base import Objective
from seektune.train.objectives.causal_lm import CausalLMObjective

OBJECTIVES: dict[str, Callable[[nn.Module, Config], Objective]] = {
    "causal_lm": lambda model, cfg: CausalLMObjective(model, label_smoothing=cfg.train.label_smoothing),
}

__all__ = ["OBJECTIVES", "CausalLMObjective", "Objective", "build"]


def build(model: nn.Module, cfg: Config) -> Objective:
    try:
        return OBJECTIVES[cfg.train.objective](model, cfg)
    except KeyError:
        raise ConfigError(f"train.objective: unknown objective {cfg.train.objective!r}; one of "
                          f"{', '.join(OBJECTIVES)}") from None
