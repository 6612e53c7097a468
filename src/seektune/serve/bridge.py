"""One generation as the event loop sees it: submit to the engine, receive its tokens (sent from the engine's
thread) as (reasoning, content) text deltas, honour stop strings, the request timeout and a vanished client, and
answer repeated greedy requests from the response cache."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable

from seektune.serve.cache import CachedAnswer, ResponseCache
from seektune.serve.catalog import ServedModel
from seektune.serve.engine.base import Engine, Finished, GenerationRequest, QueueFull
from seektune.serve.errors import ApiError
from seektune.serve.metrics import Metrics
from seektune.data.reasoning import THINK_CLOSE, prompt_opens_reasoning
from seektune.serve.text import ReasoningSplit, TextStream

_POLL_S = 0.5   # how often a waiting request checks that its client is still there


@dataclass
class PromptImages:
    """A chat request's images as the engine takes them: pixel tensors, and a digest for the response cache."""

    pixels: dict
    digest: str


@dataclass
class Delta:
    reasoning: str
    content: str


@dataclass
class Done:
    finish_reason: str
    completion_tokens: int


def _thinking_budget(tokenizer, budget: int | None, opened: bool) -> dict:
    """The engine fields that write `</think>` for a model whose reasoning reaches `budget` tokens."""
    if budget is None:
        return {}
    return {"think_budget": budget, "think_open": opened,
            "think_close": tuple(tokenizer(f"\n{THINK_CLOSE}\n\n", add_special_tokens=False)["input_ids"]),
            "think_end": tokenizer.convert_tokens_to_ids(THINK_CLOSE)}


class Generation:
    def __init__(self, served: ServedModel, prompt_ids: list[int], max_tokens: int, *, temperature: float,
                 top_p: float, seed: int | None, stops: list[str], route: str, split_reasoning: bool,
                 max_reasoning_tokens: int | None, images: "PromptImages | None" = None,
                 engine: Engine, cache: ResponseCache, metrics: Metrics, timeout_s: float,
                 disconnected: Callable[[], Awaitable[bool]]):
        self.served, self.prompt_ids, self.max_tokens = served, prompt_ids, max_tokens
        self.engine, self.cache, self.metrics = engine, cache, metrics
        self.timeout_s, self.disconnected = timeout_s, disconnected
        self.arrived = time.perf_counter()
        self.reasoning_on = split_reasoning and served.reasoning
        opened = self.reasoning_on and prompt_opens_reasoning(served.tokenizer, prompt_ids)
        self.text = TextStream(served.tokenizer, stops, ReasoningSplit(opened) if self.reasoning_on else None)
        self.cache_key = cache.key(served.name, prompt_ids, max_tokens, stops, route, max_reasoning_tokens,
                                   images.digest if images else "") if temperature == 0 else None
        self.cached = self.cache.get(self.cache_key) if self.cache_key else None
        self._queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self.request = GenerationRequest(
            prompt_ids, max_tokens, lambda event: loop.call_soon_threadsafe(self._queue.put_nowait, event),
            adapter=served.adapter, stop_ids=served.stop_ids, temperature=temperature, top_p=top_p, seed=seed,
            image_inputs=images.pixels if images else None,
            **(_thinking_budget(served.tokenizer, max_reasoning_tokens, opened) if self.reasoning_on else {}))
        self.completion_tokens = 0
        self.cut_short: str | None = None   # why the generation ended early: timeout, else the client left

    def submit(self) -> None:
        """Queue the generation (nothing to do on a cache hit); a full queue is a 429 before any byte is sent."""
        if self.cached is not None:
            return
        try:
            self.engine.submit(self.request)
        except QueueFull as full:
            self.metrics.rejected.labels("queue_full").inc()
            raise ApiError(429, f"the server is at its queue limit; retry in {full.retry_after_s:.0f}s",
                           kind="rate_limit_error", code="queue_full",
                           headers={"Retry-After": str(int(full.retry_after_s + 0.999))}) from None

    async def deltas(self) -> AsyncIterator[Delta | Done]:
        """Text deltas, then one Done. Leaving early (client gone, stop string) cancels the engine's row."""
        if self.cached is not None:
            yield Delta(self.cached.reasoning or "", self.cached.content)
            yield Done(self.cached.finish_reason, self.cached.completion_tokens)
            return
        reasoning, content = [], []
        finished: Done | None = None
        try:
            async for event in self._events():
                if isinstance(event, Finished):
                    if event.reason == "error":
                        raise ApiError(500, f"generation failed: {event.error}", kind="server_error")
                    if event.reason == "cancelled":
                        raise ApiError(503, "the server is shutting down", kind="server_error")
                    tail = Delta(*self.text.finish())
                    finished = Done(event.reason, event.completion_tokens)
                else:
                    self.completion_tokens += 1
                    if self.completion_tokens == 1:
                        self.metrics.ttft.observe(time.perf_counter() - self.arrived)
                    tail = Delta(*self.text.push(event.id))
                    if self.text.stopped:
                        finished = Done("stop", self.completion_tokens)
                if tail.reasoning or tail.content:
                    reasoning.append(tail.reasoning)
                    content.append(tail.content)
                    yield tail
                if finished is not None:
                    break
            self._remember(finished, "".join(reasoning), "".join(content))
            yield finished
        finally:
            if finished is None or self.text.stopped:
                self.request.cancel()
            if finished is None:
                self.metrics.cancelled.labels(self.cut_short or "client_gone").inc()
            self._count(finished.completion_tokens if finished else self.completion_tokens)

    async def _events(self) -> AsyncIterator:
        deadline = self.arrived + self.timeout_s
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                self.cut_short = "timeout"
                raise ApiError(504, f"the request took longer than the server's {self.timeout_s:.0f}s limit",
                               kind="timeout_error", code="request_timeout")
            try:
                event = await asyncio.wait_for(self._queue.get(), min(_POLL_S, remaining))
            except asyncio.TimeoutError:
                if await self.disconnected():
                    raise asyncio.CancelledError from None
                continue
            yield event
            if isinstance(event, Finished):
                return

    def _count(self, completion_tokens: int) -> None:
        name = self.served.name
        self.metrics.prompt_tokens.labels(name).inc(len(self.prompt_ids))
        self.metrics.completion_tokens.labels(name).inc(completion_tokens)
        self.metrics.latency.observe(time.perf_counter() - self.arrived)

    def _remember(self, done: Done, reasoning: str, content: str) -> None:
        if self.cache_key is not None:
            self.cache.put(self.cache_key, CachedAnswer(content, reasoning if self.reasoning_on else None,
                                                        done.finish_reason, done.completion_tokens))
