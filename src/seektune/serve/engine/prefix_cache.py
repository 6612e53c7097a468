"""Prefix (KV) reuse: the keys and values of recently prefilled prompts, per adapter. A new prompt that starts
like a stored one (the same system prompt, or the previous turn of the same conversation) reuses those columns
and prefills only the rest. Any shared start counts, not only whole stored prompts: a key or value at position t
depends only on tokens up to t. Bounded by a token budget, least recently used out first."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

MIN_REUSE = 4   # shorter shared starts are not worth the copying


@dataclass
class _Entry:
    adapter: str | None
    ids: torch.Tensor                              # [length]
    kv: list[tuple[torch.Tensor, torch.Tensor]]    # per layer: keys, values [kv_heads, length, head_dim]


class PrefixCache:
    def __init__(self, budget_tokens: int):
        self.budget_tokens = budget_tokens
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._tokens = 0
        self._next = 0
        self.reused_tokens = 0   # prompt tokens not prefilled thanks to the cache

    def lookup(self, adapter: str | None, ids: list[int]) -> tuple[int, _Entry | None]:
        """(length of the longest reusable start, its entry); at least the last prompt token is always left to
        prefill, since its logits choose the first new token."""
        if not self._entries:
            return 0, None
        query = torch.tensor(ids)
        best, found, key = 0, None, None
        for k, entry in self._entries.items():
            n = min(len(entry.ids), len(ids) - 1)
            if entry.adapter != adapter or n <= best:
                continue
            same = entry.ids[:n] == query[:n]
            shared = n if bool(same.all()) else int((~same).int().argmax())
            if shared > best:
                best, found, key = shared, entry, k
        if best < MIN_REUSE:
            return 0, None
        self._entries.move_to_end(key)
        self.reused_tokens += best
        return best, found

    def add(self, adapter: str | None, ids: list[int], kv: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        if len(ids) > self.budget_tokens or len(ids) < MIN_REUSE:
            return
        while self._tokens + len(ids) > self.budget_tokens:
            _, old = self._entries.popitem(last=False)
            self._tokens -= len(old.ids)
        self._entries[self._next] = _Entry(adapter, torch.tensor(ids), kv)
        self._next += 1
        self._tokens += len(ids)

    def __len__(self) -> int:
        return len(self._entries)
