"""Next-token choice per row: greedy rows take the argmax together; sampled rows apply their own temperature and
nucleus (top-p) cut and draw from their own generator, so a seeded request repeats whatever it shares a batch
with."""

from __future__ import annotations

import torch


def make_generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero every token outside the smallest set whose probability reaches `top_p` (the top token always stays)."""
    if top_p >= 1.0:
        return probs
    sorted_probs, order = probs.sort(descending=True)
    outside = sorted_probs.cumsum(-1) - sorted_probs > top_p
    sorted_probs[outside] = 0.0
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)


def next_tokens(logits: torch.Tensor, temperatures: list[float], top_ps: list[float],
                generators: list[torch.Generator]) -> list[int]:
    """One token per row of `logits` [rows, vocab]."""
    chosen = logits.argmax(dim=-1).tolist()
    for row, temperature in enumerate(temperatures):
        if temperature > 0:
            probs = torch.softmax(logits[row].float().cpu() / temperature, dim=-1)
            probs = top_p_filter(probs, top_ps[row])
            chosen[row] = int(torch.multinomial(probs, 1, generator=generators[row]))
    return chosen
