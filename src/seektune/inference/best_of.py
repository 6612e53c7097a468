"""Answers to a list of prompts, greedy or best-of-N: sample N answers per prompt and keep the one a trained
reward model scores highest (rejection sampling). Each prompt's answers come from one seeded generator, so a
run with the same seed and settings gives the same answers."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from seektune.inference.reward_model import RewardModel, answer_message
from seektune.models.generation import generate_answers


@dataclass
class Choice:
    answer: str
    reasoning: str | None
    reward: float | None                                  # the reward model's score of the kept answer
    candidates: list[dict] = field(default_factory=list)  # every sampled answer with its score (best-of only)


def answer_all(model, tokenizer, prompts: list[list[dict]], best_of: int = 1, reward: RewardModel | None = None,
               max_new_tokens: int = 128, temperature: float = 0.8, seed: int = 0,
               batch_size: int = 8) -> list[Choice]:
    """best_of 1: one greedy answer per prompt (scored when `reward` is given); best_of N > 1: N answers sampled
    at `temperature`, the reward model's favourite kept."""
    if best_of > 1 and reward is None:
        raise ValueError("best-of-N needs a reward model to choose with")
    choices: list[Choice] = []
    step = max(1, batch_size // best_of)
    for start in tqdm(range(0, len(prompts), step), desc="generate", disable=len(prompts) <= step):
        batch = prompts[start:start + step]
        torch.manual_seed(seed + start)
        repeated = [p for p in batch for _ in range(best_of)]
        generated = generate_answers(model, tokenizer, repeated, max_new_tokens,
                                     temperature if best_of > 1 else 0.0)
        scores = reward.score(repeated, [answer_message(g.answer, g.reasoning) for g in generated]) if reward is not None else \
            [None] * len(generated)
        for i in range(len(batch)):
            group = list(zip(generated[i * best_of:(i + 1) * best_of], scores[i * best_of:(i + 1) * best_of]))
            best, score = max(group, key=lambda gs: gs[1]) if best_of > 1 else group[0]
            candidates = [{"answer": g.answer, "reward": s} for g, s in group] if best_of > 1 else []
            choices.append(Choice(best.answer, best.reasoning, score, candidates))
    return choices
