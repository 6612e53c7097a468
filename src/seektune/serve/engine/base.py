"""What the server asks of an engine: take a tokenised request, stream its tokens back, honour cancellation,
and refuse work past a bounded queue. The transformers engine (`batched.py`) implements it on CPU or one GPU; a
vLLM engine (`AsyncLLMEngine` with a `LoRARequest` per adapter) fits the same interface where vLLM installs.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Literal

FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass(frozen=True)
class Token:
    id: int


@dataclass(frozen=True)
class Finished:
    reason: FinishReason
    completion_tokens: int
    error: str | None = None


Event = Token | Finished


@dataclass
class GenerationRequest:
    """One sequence to generate. `sink` receives Token events then exactly one Finished, on the engine's thread."""

    prompt_ids: list[int]
    max_tokens: int
    sink: Callable[[Event], None]
    adapter: str | None = None          # peft adapter name for this row (None: the model as loaded)
    stop_ids: frozenset[int] = frozenset()
    temperature: float = 0.0            # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None
    # a thinking budget (R1-style models): after `think_budget` tokens inside the reasoning block, the tokens of
    # `think_close` ("\n</think>\n\n") are written for the model; `think_end` is the `</think>` token id
    think_budget: int | None = None
    think_open: bool = False            # the prompt opened the block
    think_close: tuple[int, ...] = ()
    think_end: int | None = None
    # a vision-language prompt's pixel tensors (pixel_values...), for its images in placeholder order; such a
    # prompt never reuses or leaves prefix KV (its image tokens look alike whatever the picture)
    image_inputs: dict | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Ask the engine to drop this row at its next step (client gone, stop string seen, timeout)."""
        self.cancelled.set()


class QueueFull(Exception):
    """The engine's queue is at its limit; the caller should answer 429 and ask the client to retry later."""

    def __init__(self, retry_after_s: float):
        super().__init__(f"queue full; retry in {retry_after_s:.0f}s")
        self.retry_after_s = retry_after_s


class Engine(ABC):
    context_length: int

    @abstractmethod
    def submit(self, request: GenerationRequest) -> None:
        """Queue a request or raise QueueFull; never blocks."""

    @abstractmethod
    def start(self) -> None:
        """Start generating (after the model is loaded and warmed up)."""

    @abstractmethod
    def stop(self) -> None:
        """Finish: pending and running requests end with Finished('cancelled')."""

    @property
    @abstractmethod
    def queue_depth(self) -> int:
        """Requests waiting for a batch slot."""

    @property
    @abstractmethod
    def active(self) -> int:
        """Requests generating now."""

    @property
    def prefix_reused_tokens(self) -> int:
        """Prompt tokens not prefilled because their KV was reused (engines without prefix reuse: 0)."""
        return 0
