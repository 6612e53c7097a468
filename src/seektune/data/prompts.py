"""Prompts to sample from (GRPO): each row is one inference prompt, rendered exactly as `seektune chat` and the
server render it, with the example whose key fact / reference the reward functions check."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seektune.data.examples import Example
from seektune.data.render import Renderer


@dataclass
class PromptRow:
    prompt_ids: list[int]
    example: Example
    group_size: int

    @property
    def images(self) -> list[str]:
        """The prompt's images (the loop refuses image data for objectives that do not take images)."""
        return self.example.images

    @property
    def supervised(self) -> int:
        """Units of the loss: every sampled completion counts once."""
        return self.group_size


def render_prompt(renderer: Renderer, example: Example, group_size: int) -> PromptRow | None:
    """None (counted as dropped) when the prompt alone fills data.max_length."""
    ids = renderer.prompt_ids(example.messages)
    if len(ids) >= renderer.max_length:
        renderer.stats.dropped_overlength += 1
        return None
    return PromptRow(ids, example, group_size)


def collate_prompts(rows: list[PromptRow], pad_id: int) -> dict:
    """Left-padded prompts (generation appends on the right) and their examples."""
    width = max(len(r.prompt_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
        mask[i, width - len(r.prompt_ids):] = 1
    return {"input_ids": ids, "attention_mask": mask, "examples": [r.example for r in rows]}
