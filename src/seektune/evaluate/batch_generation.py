"""Timed single-prompt generation for latency figures (answers themselves come from
models.generation.generate_answers)."""

from __future__ import annotations

import time

import torch
from transformers.generation.streamers import BaseStreamer

from seektune.data.render import Renderer, end_of_turn_ids
from seektune.models.vision import token_types


class _Clock(BaseStreamer):
    """Timestamps every token generate() emits; the first put() is the prompt."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self._prompt_seen = False

    def put(self, value) -> None:
        if self._prompt_seen:
            self.stamps.append(time.perf_counter())
        self._prompt_seen = True

    def end(self) -> None:
        pass


@torch.no_grad()
def timed_generation(model, tokenizer, messages: list[dict], max_new_tokens: int, images=None,
                     image_files: list[str] = ()) -> dict:
    """Time to first token (prompt processing + first step: image encoding included), ms per later token, and
    tokens/s, greedy. `images`: a vision-language model's processor, for prompts with `image_files`."""
    ids = torch.tensor([Renderer(tokenizer, max_length=1 << 30, images=images).prompt_ids(messages, image_files)])
    ids = ids.to(model.device)
    pixels = {**images.pixel_values(list(image_files)), **token_types(model, ids)} if image_files else {}
    clock = _Clock()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         max_new_tokens=max_new_tokens, eos_token_id=end_of_turn_ids(tokenizer),
                         pad_token_id=tokenizer.pad_token_id, streamer=clock,
                         **{k: v.to(model.device) for k, v in pixels.items()})
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    end = time.perf_counter()
    new_tokens = int(out.shape[1] - ids.shape[1])
    first = (clock.stamps[0] if clock.stamps else end) - start
    later = (end - start - first) / max(1, new_tokens - 1)
    return {"ttft_ms": 1000 * first, "ms_per_token": 1000 * later, "tokens_per_s": new_tokens / (end - start),
            "new_tokens": new_tokens}
