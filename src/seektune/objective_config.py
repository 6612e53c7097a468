"""The `objective:` section of the config: which loss the one loop trains with, and that loss's settings.

One flat section, as users write it (`objective: {name: dpo, beta: 0.1, loss: sigmoid}`); a setting that belongs
to another objective is an error naming the key, so a typo'd or misplaced setting never passes silently.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from seektune.schema import Section

OBJECTIVES = ("causal_lm", "dpo", "reward", "grpo", "kd", "clip", "caption")
VISION_ALIGNMENT = ("clip", "caption")   # vision-language stages that keep the language model frozen
PAIRWISE = ("dpo", "reward")             # data: preference pairs (prompt, chosen, rejected)
PROMPTS_ONLY = ("grpo",)                 # data: prompts (+ what the rewards check); answers are generated
REFERENCE_FREE = ("simpo", "orpo")
REWARDS = ("key_fact", "format", "citation", "length")   # + "regex:<pattern>" and "model:<reward model dir>"
DEFAULT_BETA = {"dpo": 0.1, "grpo": 0.04}

# which settings each objective reads (name is everyone's)
_SETTINGS = {
    "causal_lm": set(),
    "dpo": {"loss", "beta", "simpo_gamma", "sft_weight"},
    "reward": {"margin_weight"},
    "grpo": {"beta", "group_size", "rewards", "reward_weights", "max_new_tokens", "temperature", "top_p",
             "epsilon", "max_length_chars"},
    "kd": {"teacher", "temperature", "alpha", "divergence", "jsd_beta"},
    "clip": {"embedding_dim", "init_temperature", "text_features", "pair_with", "view_shift", "view_noise"},
    "caption": set(),
}


class ObjectiveConfig(Section):
    name: Literal[OBJECTIVES] = Field(
        "causal_lm", description="causal_lm (cross-entropy on answers), dpo (preference pairs against a reference; "
        "simpo/orpo without one), reward (Bradley-Terry reward model on pairs), grpo (sampled groups scored by "
        "reward functions), kd (distillation from a teacher on the answer tokens), clip (vision-language: "
        "symmetric contrastive alignment of the vision tower with the frozen language model's text features, or of "
        "two views of each image), caption (vision-language: cross-entropy on captions with the language model "
        "frozen, LLaVA's projector pre-training)")
    loss: Literal["sigmoid", "ipo", "hinge", "simpo", "orpo"] = Field(
        "sigmoid", description="dpo: sigmoid (DPO), ipo, hinge (SLiC) against the reference model; simpo and orpo "
        "need no reference")
    beta: float | None = Field(
        None, ge=0, description="dpo: preference strength (ORPO's lambda), default 0.1; grpo: weight of the KL "
        "term to the reference, default 0.04 (0: no reference, no KL)")
    simpo_gamma: float = Field(0.5, ge=0, description="dpo with loss simpo: target reward margin")
    sft_weight: float = Field(
        0.0, ge=0, description="dpo: weight of the chosen answers' per-token cross-entropy added to the loss "
        "(RPO; TRL's rpo_alpha): keeps the chosen answers likely instead of only further than the rejected")
    margin_weight: float = Field(
        0.0, ge=0, description="reward: weight of a penalty on the squared mean reward (centres the rewards, "
        "as TRL's center_rewards_coefficient); 0 = off")
    group_size: int = Field(4, ge=2, description="grpo: completions sampled per prompt")
    rewards: list[str] = Field(
        default_factory=lambda: ["key_fact"],
        description="grpo: reward functions, summed: key_fact (the record's key_fact appears in the answer), "
        "format (the answer closes its think block / is one non-empty answer), citation (cited law articles "
        "match the reference's), length (shorter than max_length_chars), regex:<pattern> (the answer matches), "
        "model:<reward model dir> (a trained reward model's score)")
    reward_weights: list[float] | None = Field(
        None, description="grpo: one weight per reward function (default 1 each)")
    max_new_tokens: int = Field(48, gt=0, description="grpo: longest sampled completion, in tokens")
    temperature: float = Field(1.0, gt=0, description="grpo: sampling temperature of the completions; kd: softmax "
                               "temperature of teacher and student")
    top_p: float = Field(1.0, gt=0, le=1, description="grpo: nucleus sampling of the completions")
    epsilon: float = Field(0.2, gt=0, lt=1, description="grpo: clip range of the policy ratio")
    max_length_chars: int = Field(200, gt=0, description="grpo: the length reward's limit, in characters")

    teacher: str | None = Field(
        None, description="kd: the teacher (a run, a model directory or a packaged name); it must share the "
        "student's tokenizer")
    alpha: float = Field(0.5, ge=0, le=1, description="kd: weight of the distillation term; 1 - alpha weighs the "
                         "cross-entropy on the answers")
    divergence: Literal["forward_kl", "reverse_kl", "jsd"] = Field(
        "forward_kl", description="kd: forward_kl KL(teacher||student), reverse_kl KL(student||teacher), or jsd "
        "(generalised Jensen-Shannon with jsd_beta), per answer token")
    jsd_beta: float = Field(0.5, gt=0, lt=1, description="kd with divergence jsd: the mixture weight (TRL GKD's beta)")

    embedding_dim: int = Field(128, gt=0, description="clip: size of the joint image-text space")
    init_temperature: float = Field(0.07, gt=0, description="clip: starting softmax temperature (learned; CLIP's "
                                    "0.07, its logit scale clamped at 100)")
    text_features: Literal["hidden", "embeddings"] = Field(
        "hidden", description="clip: the caption's features from the frozen language model: mean of its last "
        "hidden states, or of its input embeddings")
    pair_with: Literal["text", "views"] = Field(
        "text", description="clip: align images with their captions (text), or two augmented views of each image "
        "(views: the vision tower alone, the seeds' first stage)")
    view_shift: float = Field(0.125, ge=0, lt=0.5, description="clip with pair_with views: largest random shift, "
                              "as a share of the image side")
    view_noise: float = Field(0.1, ge=0, description="clip with pair_with views: std of the Gaussian noise added to "
                              "the normalised pixels")

    @field_validator("rewards")
    @classmethod
    def _known_rewards(cls, rewards: list[str]) -> list[str]:
        for reward in rewards:
            kind, _, arg = reward.partition(":")
            if kind == "regex":
                try:
                    re.compile(arg)
                except re.error as exc:
                    raise ValueError(f"reward {reward!r}: not a valid regular expression ({exc})") from None
            elif kind == "model":
                if not arg:
                    raise ValueError("reward 'model:' needs a reward model directory, e.g. model:runs/rm")
            elif reward not in REWARDS:
                raise ValueError(f"unknown reward {reward!r}; one of {', '.join(REWARDS)}, regex:<pattern>, "
                                 "model:<dir>")
        if not rewards:
            raise ValueError("grpo needs at least one reward function")
        return rewards

    @model_validator(mode="after")
    def _settings_of_this_objective(self) -> "ObjectiveConfig":
        # a setting of another objective that differs from its default (a saved config lists every key)
        misplaced = sorted(k for k in self.model_fields_set - _SETTINGS[self.name] - {"name"}
                           if getattr(self, k) != type(self).model_fields[k].get_default(call_default_factory=True))
        if misplaced:
            owners = {k: [o for o, keys in _SETTINGS.items() if k in keys] for k in misplaced}
            raise ValueError("; ".join(f"objective.{k} is a setting of {' / '.join(owners[k])}, not {self.name}"
                                       for k in misplaced))
        if self.beta is None and self.name in DEFAULT_BETA:
            object.__setattr__(self, "beta", DEFAULT_BETA[self.name])  # no re-validation (validate_assignment)
        if self.name == "dpo" and self.beta == 0:
            raise ValueError("objective.beta must be > 0 for dpo (it scales the preference margin)")
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError(f"objective.reward_weights has {len(self.reward_weights)} weights for "
                             f"{len(self.rewards)} rewards")
        return self

    @model_validator(mode="after")
    def _kd_needs_a_teacher(self) -> "ObjectiveConfig":
        if self.name == "kd" and not self.teacher:
            raise ValueError("objective kd needs objective.teacher: the run or model to distil from")
        return self

    @property
    def uses_reference(self) -> bool:
        """Whether the loss compares with a reference model (the base with the adapter switched off)."""
        return (self.name == "dpo" and self.loss not in REFERENCE_FREE) or (self.name == "grpo" and self.beta > 0)
