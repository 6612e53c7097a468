"""Greedy (or sampled) chat generation that stops on the template's end-of-turn token."""

from __future__ import annotations

import torch

from seektune.data.render import Renderer, end_of_turn_ids


def chat_prompt_ids(tokenizer, messages: list[dict]) -> torch.Tensor:
    """The exact prompt the model saw during training (the training renderer's pieces, no extra specials)."""
    return torch.tensor([Renderer(tokenizer, max_length=1 << 30).prompt_ids(messages)])


@torch.no_grad()
def generate(model, tokenizer, messages: list[dict], max_new_tokens: int = 128, temperature: float = 0.0,
             streamer=None) -> str:
    ids = chat_prompt_ids(tokenizer, messages).to(model.device)
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    out = model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
        eos_token_id=end_of_turn_ids(tokenizer), pad_token_id=tokenizer.pad_token_id, streamer=streamer,
        **sampling,
    )
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
