"""Reward functions for GRPO: each scores one sampled answer against its example, in [0, 1]; the set sums
them with weights. Text rewards use the evaluation metrics' own definitions (seektune.metrics), so what GRPO
optimises is what `seektune eval` reports."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch

from seektune.data.examples import Example
from seektune.errors import DataError
from seektune.metrics.citation import citation_scores
from seektune.metrics.text import key_fact_match
from seektune.objective_config import ObjectiveConfig


@dataclass
class Sampled:
    """One sampled answer, as the reward functions see it."""

    answer: str                 # after </think> for reasoning models
    reasoning: str | None
    closed: bool                # the think block (if any) was closed
    finished: bool              # generation stopped at the end-of-turn token, not at max_new_tokens
    example: Example


def key_fact(s: Sampled) -> float:
    if not s.example.key_fact:
        raise DataError(f"{s.example.where}: the key_fact reward needs a key_fact field in every record")
    return key_fact_match(s.answer, s.example.key_fact)


def answer_format(s: Sampled) -> float:
    """A finished turn with a non-empty answer (and, when it reasoned, a closed think block)."""
    return float(s.finished and s.closed and bool(s.answer.strip()))


def citation(s: Sampled) -> float:
    """1 for the reference's article cited exactly, 0.5 for the right law only, 0 otherwise (also when the
    reference cites nothing)."""
    scores = citation_scores(s.answer, s.example.reference)
    if scores is None:
        return 0.0
    return 1.0 if scores["citation_exact"] else 0.5 * scores["citation_law"]


def _length(limit: int) -> Callable[[Sampled], float]:
    return lambda s: 1.0 if len(s.answer) <= limit else limit / len(s.answer)


def _regex(pattern: str) -> Callable[[Sampled], float]:
    compiled = re.compile(pattern)
    return lambda s: float(compiled.search(s.answer) is not None)


class RewardSet:
    """The configured reward functions; `model:` rewards are scored in batches by `model_scorer`."""

    def __init__(self, cfg: ObjectiveConfig, model_scorer: Callable[[str, list[Sampled]], list[float]] | None = None):
        self.names = list(cfg.rewards)
        self.weights = list(cfg.reward_weights or [1.0] * len(self.names))
        self.model_scorer = model_scorer
        self.functions: dict[str, Callable[[Sampled], float]] = {}
        for name in self.names:
            kind, _, arg = name.partition(":")
            if kind == "regex":
                self.functions[name] = _regex(arg)
            elif kind == "length":
                self.functions[name] = _length(cfg.max_length_chars)
            elif kind != "model":
                self.functions[name] = {"key_fact": key_fact, "format": answer_format, "citation": citation}[name]
        if any(n.startswith("model:") for n in self.names) and model_scorer is None:
            raise ValueError("a model: reward needs a reward model scorer")

    def __call__(self, sampled: list[Sampled]) -> tuple[torch.Tensor, dict[str, float]]:
        """(weighted total per answer, mean of each function over the answers)."""
        columns = {}
        for name in self.names:
            if name.startswith("model:"):
                columns[name] = list(self.model_scorer(name[len("model:"):], sampled))
            else:
                columns[name] = [self.functions[name](s) for s in sampled]
        table = torch.tensor([columns[n] for n in self.names], dtype=torch.float64)
        total = (torch.tensor(self.weights, dtype=torch.float64)[:, None] * table).sum(dim=0)
        return total, {n: sum(v) / len(v) for n, v in columns.items()}
