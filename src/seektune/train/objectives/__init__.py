"""The objective registry: `objective.name` names one builder here, the only place that name is looked up.

Adding an objective (distillation, ...): one module in this package with an Objective subclass (and its
collate, when its rows differ), one entry in OBJECTIVES and DATA, its name and settings in objective_config.py.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from seektune.config import Config
from seektune.errors import ConfigError
from seektune.train.objectives.base import Objective
from seektune.train.objectives.causal_lm import CausalLMObjective
from seektune.train.objectives.grpo import GRPOObjective
from seektune.train.objectives.preference import PreferenceObjective
from seektune.train.objectives.reward import RewardObjective
from seektune.train.rewards import RewardSet


def _grpo(model: nn.Module, cfg: Config, tokenizer) -> GRPOObjective:
    from seektune.inference.reward_model import score_with_reward_models

    return GRPOObjective(model, cfg.objective, tokenizer, RewardSet(cfg.objective, score_with_reward_models()))


OBJECTIVES: dict[str, Callable[[nn.Module, Config, object], Objective]] = {
    "causal_lm": lambda model, cfg, tokenizer: CausalLMObjective(model, label_smoothing=cfg.train.label_smoothing),
    "dpo": lambda model, cfg, tokenizer: PreferenceObjective(model, cfg.objective),
    "reward": lambda model, cfg, tokenizer: RewardObjective(model, cfg.objective),
    "grpo": _grpo,
}
# what each objective's rows are (seektune.data.dataset KINDS) and which model head it trains
DATA = {"causal_lm": "sft", "dpo": "pairs", "reward": "pairs", "grpo": "prompts"}
HEAD = {"reward": "reward"}

__all__ = ["DATA", "HEAD", "OBJECTIVES", "CausalLMObjective", "GRPOObjective", "Objective", "PreferenceObjective",
           "RewardObjective", "build"]


def build(model: nn.Module, cfg: Config, tokenizer) -> Objective:
    try:
        builder = OBJECTIVES[cfg.objective.name]
    except KeyError:
        raise ConfigError(f"objective.name: unknown objective {cfg.objective.name!r}; one of "
                          f"{', '.join(OBJECTIVES)}") from None
    return builder(model, cfg, tokenizer)
