"""Answers to deterministic requests (greedy: temperature 0), kept by (model, exact prompt ids, parameters) in a
bounded LRU so a repeated question is answered without the model."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class CachedAnswer:
    content: str
    reasoning: str | None
    finish_reason: str
    completion_tokens: int


class ResponseCache:
    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, CachedAnswer] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(model: str, prompt_ids: list[int], max_tokens: int, stops: list[str], route: str,
            max_reasoning_tokens: int | None = None, images: str = "") -> tuple:
        """`images`: a digest of the prompt's images (their tokens are the same whatever the picture)."""
        return model, route, tuple(prompt_ids), max_tokens, tuple(stops), max_reasoning_tokens, images

    def get(self, key: tuple) -> CachedAnswer | None:
        if self.max_entries <= 0:
            return None
        with self._lock:
            answer = self._entries.get(key)
            if answer is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return answer

    def put(self, key: tuple, answer: CachedAnswer) -> None:
        """Only whole answers are kept (a cancelled or failed generation is not an answer)."""
        if self.max_entries <= 0 or answer.finish_reason not in ("stop", "length"):
            return
        with self._lock:
            self._entries[key] = answer
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
