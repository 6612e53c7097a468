"""Batched greedy generation (left-padded prompts, each stopped at the template's end-of-turn token), and
timed single-prompt generation for latency figures."""

from __future__ import annotations

import time

import torch
from transformers.generation.streamers import BaseStreamer

from seektune.data.render import end_of_turn_ids
from seektune.models.generation import chat_prompt_ids


@torch.no_grad()
def generate_batch(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int, temperature: float = 0.0
                   ) -> list[str]:
    ids = [chat_prompt_ids(tokenizer, messages)[0] for messages in prompts]
    width = max(len(x) for x in ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, width - len(x):] = x
        mask[i, width - len(x):] = 1
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    out = model.generate(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
                         max_new_tokens=max_new_tokens, eos_token_id=end_of_turn_ids(tokenizer), pad_token_id=pad,
                         **sampling)
    return [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]


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
def timed_generation(model, tokenizer, messages: list[dict], max_new_tokens: int) -> dict:
    """Time to first token (prompt processing + first step), ms per later token, and tokens/s, greedy."""
    ids = chat_prompt_ids(tokenizer, messages).to(model.device)
    clock = _Clock()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         max_new_tokens=max_new_tokens, eos_token_id=end_of_turn_ids(tokenizer),
                         pad_token_id=tokenizer.pad_token_id, streamer=clock)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    end = time.perf_counter()
    new_tokens = int(out.shape[1] - ids.shape[1])
    first = (clock.stamps[0] if clock.stamps else end) - start
    later = (end - start - first) / max(1, new_tokens - 1)
    return {"ttft_ms": 1000 * first, "ms_per_token": 1000 * later, "tokens_per_s": new_tokens / (end - start),
            "new_tokens": new_tokens}
