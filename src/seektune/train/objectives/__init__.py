"""The objective registry: `objective.name` names one builder here, the only place that name is looked up.

Adding an objective: one module in this package with an Objective subclass (and its
collate, when its rows differ), one entry in OBJECTIVES and DATA, its name and settings in objective_config.py.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from seektune.config import Config
from seektune.errors import ConfigError
from seektune.models.unwrap import unwrap_peft
from seektune.objective_config import VISION_ALIGNMENT
from seektune.train.objectives.base import Objective
from seektune.train.objectives.causal_lm import CaptionObjective, CausalLMObjective
from seektune.train.objectives.contrastive import ContrastiveObjective
from seektune.train.objectives.distill import DistillationObjective
from seektune.train.objectives.grpo import GRPOObjective
from seektune.train.objectives.preference import PreferenceObjective
from seektune.train.objectives.reward import RewardObjective
from seektune.train.rewards import RewardSet


def _grpo(model: nn.Module, cfg: Config, tokenizer) -> GRPOObjective:
    from seektune.inference.reward_model import score_with_reward_models

    return GRPOObjective(model, cfg.objective, tokenizer, RewardSet(cfg.objective, score_with_reward_models()))


def _kd(model: nn.Module, cfg: Config, tokenizer) -> DistillationObjective:
    """The teacher, loaded once and checked to speak the student's vocabulary."""
    from seektune.artifacts import open_artifact

    artifact = open_artifact(cfg.objective.teacher)
    teacher_vocab = artifact.load_tokenizer().get_vocab()
    if teacher_vocab != tokenizer.get_vocab():
        raise ConfigError(f"objective.teacher: {cfg.objective.teacher} has another tokenizer ({len(teacher_vocab)} "
                          f"tokens vs the student's {len(tokenizer.get_vocab())}, or the same size with other ids); "
                          "distillation compares next-token distributions over one vocabulary, so teacher and "
                          "student must share their tokenizer")
    teacher = artifact.load_model()
    rows = teacher.get_output_embeddings().weight.shape[0], unwrap_peft(model).get_output_embeddings().weight.shape[0]
    if rows[0] != rows[1]:
        raise ConfigError(f"objective.teacher: its output head has {rows[0]} rows, the student's {rows[1]}: resize "
                          "one so both score the same vocabulary")
    return DistillationObjective(model, cfg.objective, teacher)


OBJECTIVES: dict[str, Callable[[nn.Module, Config, object], Objective]] = {
    "causal_lm": lambda model, cfg, tokenizer: CausalLMObjective(model, label_smoothing=cfg.train.label_smoothing,
                                                                 chunked_loss=cfg.train.chunked_loss),
    "dpo": lambda model, cfg, tokenizer: PreferenceObjective(model, cfg.objective),
    "reward": lambda model, cfg, tokenizer: RewardObjective(model, cfg.objective),
    "grpo": _grpo,
    "kd": _kd,
    "clip": lambda model, cfg, tokenizer: ContrastiveObjective(model, cfg.objective),
    "caption": lambda model, cfg, tokenizer: CaptionObjective(model, chunked_loss=cfg.train.chunked_loss),
}
# what each objective's rows are (seektune.data.dataset KINDS) and which model head it trains
DATA = {"causal_lm": "sft", "dpo": "pairs", "reward": "pairs", "grpo": "prompts", "kd": "sft", "clip": "captions",
        "caption": "sft"}
NEEDS_IMAGES = VISION_ALIGNMENT   # vision-language stages: a vision-language model and images in the data
TAKES_IMAGES = ("causal_lm", *NEEDS_IMAGES)
HEAD = {"reward": "reward"}

__all__ = ["DATA", "HEAD", "NEEDS_IMAGES", "OBJECTIVES", "TAKES_IMAGES", "CaptionObjective", "CausalLMObjective",
           "ContrastiveObjective", "DistillationObjective", "GRPOObjective", "Objective", "PreferenceObjective",
           "RewardObjective", "build"]


def build(model: nn.Module, cfg: Config, tokenizer) -> Objective:
    try:
        builder = OBJECTIVES[cfg.objective.name]
    except KeyError:
        raise ConfigError(f"objective.name: unknown objective {cfg.objective.name!r}; one of "
                          f"{', '.join(OBJECTIVES)}") from None
    return builder(model, cfg, tokenizer)
