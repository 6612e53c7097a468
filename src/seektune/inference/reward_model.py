"""A trained reward model (`objective: {name: reward}`) scoring answers to prompts: the prompt and answer are
rendered exactly as the training pairs were (the training renderer), and scored by the model's own head.
GRPO's `model:<dir>` reward and `seektune generate --best-of N --reward DIR` use it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from seektune.artifacts import open_artifact
from seektune.data.batching import Row, collate
from seektune.data.render import Renderer
from seektune.errors import ModelError


def answer_message(answer: str, reasoning: str | None) -> dict:
    """A generated answer as the assistant message the reward model scores (its reasoning kept apart)."""
    return {"role": "assistant", "content": answer, **({"reasoning": reasoning} if reasoning else {})}


class RewardModel:
    def __init__(self, ref: str | Path, batch_size: int = 8):
        artifact = open_artifact(ref)
        if artifact.head != "reward":
            raise ModelError(f"{ref} is not a reward model (train one with objective: {{name: reward}})")
        self.model, self.tokenizer = artifact.load_model().eval(), artifact.load_tokenizer()
        self.renderer = Renderer(self.tokenizer, max_length=1 << 30, train_on="last_assistant")
        self.batch_size = batch_size

    def ids(self, prompt: list[dict], answer: dict) -> list[int]:
        return self.renderer.conversation([*prompt, answer])[-1].input_ids

    @torch.no_grad()
    def score(self, prompts: list[list[dict]], answers: list[dict]) -> list[float]:
        """One score per (prompt messages, assistant message); higher is preferred."""
        rows = [Row(ids, [0] * len(ids), list(range(len(ids))))
                for ids in (self.ids(p, a) for p, a in zip(prompts, answers))]
        scores: list[float] = []
        device = next(self.model.parameters()).device
        for i in range(0, len(rows), self.batch_size):
            batch = collate(rows[i:i + self.batch_size], self.tokenizer.pad_token_id, packed=False)
            out = self.model(input_ids=batch["input_ids"].to(device),
                             attention_mask=batch["attention_mask"].to(device)).logits[:, 0]
            scores += out.float().tolist()
        return scores


def score_with_reward_models() -> Callable[[str, list], list[float]]:
    """GRPO's scorer for `model:<dir>` rewards: each model loaded once, on first use."""
    loaded: dict[str, RewardModel] = {}

    def scorer(ref: str, sampled: list) -> list[float]:
        if ref not in loaded:
            loaded[ref] = RewardModel(ref)
        answers = [answer_message(s.answer, s.reasoning) for s in sampled]
        return loaded[ref].score([s.example.messages for s in sampled], answers)

    return scorer
