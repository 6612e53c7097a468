"""Perplexity on chat or text data, over supervised tokens only (the assistant answers and their end-of-turn
token, exactly the tokens training learns), rendered with the same template and masks as training."""

from __future__ import annotations

import math

import torch

from seektune.data.batching import collate, unpacked
from seektune.data.formats import normalise
from seektune.data.render import Renderer
from seektune.train.objectives import CausalLMObjective


@torch.no_grad()
def perplexity(model, tokenizer, records: list[dict], max_length: int = 1024, batch_size: int = 4) -> dict:
    renderer = Renderer(tokenizer, max_length, "truncate", "all_assistant")
    samples = []
    for i, record in enumerate(records):
        content = normalise(record, "auto")
        samples += renderer.text(content, f"#{i}") if isinstance(content, str) else renderer.conversation(
            content, f"#{i}")
    rows = unpacked(samples)
    objective = CausalLMObjective(model, selective_head=False).eval()  # the training loss, token for token
    total_nll, total_tokens = 0.0, 0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for start in range(0, len(rows), batch_size):
        batch = collate(rows[start:start + batch_size], pad, packed=False)
        loss_sum, n = objective(**{k: v.to(model.device) for k, v in batch.items()})
        total_nll += loss_sum.item()
        total_tokens += int(n)
    mean = total_nll / max(1, total_tokens)
    return {"perplexity": math.exp(mean), "nll_per_token": mean, "tokens": total_tokens}
