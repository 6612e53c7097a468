"""Continuous batching on transformers: one thread owns the model and runs a loop of steps. Each step admits
waiting requests (prefilled together, left-padded, then joined to the running batch's KV cache), decodes one
token for every running row, and retires rows that finished, were cancelled or hit their limit, so a slot frees
the step after its request ends. Rows may each use a different peft adapter (peft's mixed-batch
`adapter_names`), their own sampling settings and their own seed.

Why not transformers' `ContinuousBatchingManager`: one active adapter per manager, and on CPU its default paged
cache reserves most of the RAM; this loop keeps the model's own DynamicCache, sized by a KV memory budget.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import torch
from transformers.cache_utils import DynamicCache

from seektune.models.unwrap import unwrap_peft
from seektune.serve.engine import kv_batch
from seektune.serve.engine.base import Engine, Finished, GenerationRequest, QueueFull, Token
from seektune.serve.engine.prefix_cache import PrefixCache
from seektune.serve.engine.sampling import make_generator, next_tokens

log = logging.getLogger("seektune.serve")

BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch


@dataclass
class _Row:
    request: GenerationRequest
    generator: torch.Generator
    length: int              # tokens of this row in the cache (its next position id)
    generated: int = 0
    last: int = 0            # the token fed at the next step
    started: float = 0.0
    done: bool = False       # Finished was sent
    thinking: bool = False   # inside a reasoning block that has a budget
    forced: list[int] = field(default_factory=list)   # tokens written for the model (closing its reasoning)


class BatchedEngine(Engine):
    def __init__(self, model, context_length: int, *, max_batch: int = 32, max_queue: int = 64,
                 kv_budget_mb: int = 1024, prefix_cache_mb: int = 256, max_prefill_tokens: int = 4096,
                 mixed_adapters: bool = False):
        self.model = model
        self.max_batch, self.max_queue = max_batch, max_queue
        self.max_prefill_tokens = max_prefill_tokens
        self.mixed_adapters = mixed_adapters
        self.device = next(model.parameters()).device
        self._cache_keyword = cache_keyword(model)
        bytes_per_token = self._warm_up()
        self.budget_tokens = max(1, (kv_budget_mb << 20) // bytes_per_token)
        self.prefixes = PrefixCache((prefix_cache_mb << 20) // bytes_per_token)
        # a request longer than the KV budget could never be admitted: the server's limit is the smaller one
        self.context_length = min(context_length, self.budget_tokens)
        self._pending: deque[GenerationRequest] = deque()
        self._rows: list[_Row] = []
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._seconds_per_request = 1.0   # moving average, for Retry-After

    # -- the Engine interface -------------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> None:
        with self._cond:
            if len(self._pending) >= self.max_queue or self._stopping:
                waves = 1 + len(self._pending) / self.max_batch
                raise QueueFull(max(1.0, min(60.0, waves * self._seconds_per_request)))
            self._pending.append(request)
            self._cond.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="seektune-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
        for row in self._rows:
            row.request.sink(Finished("cancelled", row.generated))
        for request in self._pending:
            request.sink(Finished("cancelled", 0))
        self._rows, self._pending = [], deque()

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    @property
    def active(self) -> int:
        return len(self._rows)

    @property
    def prefix_reused_tokens(self) -> int:
        return self.prefixes.reused_tokens

    # -- the loop -------------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._rows and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                admitted = self._admit()
            try:
                with torch.inference_mode():
                    if admitted:
                        self._prefill(admitted)
                    self._retire()
                    if self._rows:
                        self._decode()
                        self._retire()
            except Exception as exc:  # a failed step fails its rows, never the server
                log.exception("generation step failed")
                joined = {id(row.request) for row in self._rows}
                failed = [(r.request, r.generated) for r in self._rows if not r.done]
                failed += [(request, 0) for request in admitted if id(request) not in joined]   # failed in prefill
                for request, generated in failed:
                    request.sink(Finished("error", generated, f"{type(exc).__name__}: {exc}"))
                self._rows, self._cache, self._mask = [], None, None

    def _admit(self) -> list[GenerationRequest]:
        """Waiting requests that fit: a free slot, the KV budget (rows x longest projected row, since rows are
        padded to one width) and the prefill token cap."""
        admitted: list[GenerationRequest] = []
        longest = max((r.length + r.request.max_tokens - r.generated for r in self._rows), default=0)
        prefill = 0
        while self._pending and len(self._rows) + len(admitted) < self.max_batch:
            request = self._pending[0]
            if request.cancelled.is_set():
                self._pending.popleft()
                request.sink(Finished("cancelled", 0))
                continue
            projected = max(longest, len(request.prompt_ids) + request.max_tokens)
            rows = len(self._rows) + len(admitted) + 1
            if (rows * projected > self.budget_tokens or prefill + len(request.prompt_ids) > self.max_prefill_tokens) \
                    and (self._rows or admitted):
                break
            self._pending.popleft()
            admitted.append(request)
            longest, prefill = projected, prefill + len(request.prompt_ids)
        return admitted

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: DynamicCache,
                 adapters: list[str | None], image_inputs: dict | None = None) -> torch.Tensor:
        extra = {"adapter_names": [a or BASE_ADAPTER for a in adapters]} if self.mixed_adapters else {}
        extra.update({k: v.to(self.device) for k, v in (image_inputs or {}).items()})
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                         position_ids=positions.to(self.device), **{self._cache_keyword: cache}, use_cache=True,
                         logits_to_keep=1, **extra)
        return out.logits[:, -1]

    def _prefill(self, requests: list[GenerationRequest]) -> None:
        """Prefill new rows together. Each row is [padding][reused prefix KV][padding][rest of the prompt]: the
        reused columns go into the cache before the forward, the rest is fed as input; the attention mask hides
        both paddings and position ids count only real tokens."""
        reuse = [(0, None) if r.image_inputs else self.prefixes.lookup(r.adapter, r.prompt_ids) for r in requests]
        cached = max(n for n, _ in reuse)
        rest = [r.prompt_ids[n:] for r, (n, _) in zip(requests, reuse)]
        width = max(len(x) for x in rest)
        ids = torch.zeros((len(requests), width), dtype=torch.long)
        mask = torch.zeros((len(requests), cached + width), dtype=torch.long)
        positions = torch.zeros((len(requests), width), dtype=torch.long)
        for i, ((n, _), tail) in enumerate(zip(reuse, rest)):
            ids[i, width - len(tail):] = torch.tensor(tail)
            mask[i, cached - n:cached] = 1
            mask[i, cached + width - len(tail):] = 1
            positions[i, width - len(tail):] = torch.arange(n, n + len(tail))
        cache = self._cache_with_prefixes(reuse, cached)
        logits = self._forward(ids, mask, positions, cache, [r.adapter for r in requests], _joined_images(requests))
        self._remember_prompts(requests, reuse, rest, cache, cached + width)
        now = time.perf_counter()
        rows = [_Row(r, make_generator(r.seed), len(r.prompt_ids), started=now,
                     thinking=r.think_budget is not None and r.think_open) for r in requests]
        self._cache, self._mask = kv_batch.join(self._cache, self._mask, cache, mask.to(self.device))
        self._rows += rows
        self._take(rows, logits)

    def _cache_with_prefixes(self, reuse: list, cached: int) -> DynamicCache:
        if cached == 0:
            return DynamicCache(config=self._config)
        layers = []
        for layer, (k0, v0) in enumerate(self._kv_shape):
            keys = k0.new_zeros((len(reuse), k0.shape[0], cached, k0.shape[2]))
            values = v0.new_zeros((len(reuse), v0.shape[0], cached, v0.shape[2]))
            for i, (n, entry) in enumerate(reuse):
                if n:
                    keys[i, :, cached - n:] = entry.kv[layer][0][:, :n]
                    values[i, :, cached - n:] = entry.kv[layer][1][:, :n]
            layers.append((keys, values))
        return DynamicCache(ddp_cache_data=layers, config=self._config)

    def _remember_prompts(self, requests, reuse, rest, cache: DynamicCache, width: int) -> None:
        """Keep each new prompt's KV (its reused columns and the ones just computed) for later prompts."""
        if self.prefixes.budget_tokens <= 0:
            return
        cached = width - max(len(t) for t in rest)
        for i, (request, (n, _), tail) in enumerate(zip(requests, reuse, rest)):
            if request.image_inputs:
                continue
            kv = [(torch.cat([layer.keys[i, :, cached - n:cached], layer.keys[i, :, width - len(tail):]], dim=1),
                   torch.cat([layer.values[i, :, cached - n:cached], layer.values[i, :, width - len(tail):]], dim=1))
                  for layer in cache.layers]
            self.prefixes.add(request.adapter, request.prompt_ids, kv)

    def _decode(self) -> None:
        ids = torch.tensor([[row.last] for row in self._rows])
        positions = torch.tensor([[row.length] for row in self._rows])
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(self._rows), 1))], dim=1)
        logits = self._forward(ids, self._mask, positions, self._cache, [r.request.adapter for r in self._rows])
        for row in self._rows:
            row.length += 1
        self._take(self._rows, logits)

    def _take(self, rows: list[_Row], logits: torch.Tensor) -> None:
        """Choose, count and emit one token per row."""
        chosen = next_tokens(logits, [r.request.temperature for r in rows], [r.request.top_p for r in rows],
                             [r.generator for r in rows])
        for row, token in zip(rows, chosen):
            if row.request.cancelled.is_set():
                continue  # the client is gone; _retire drops the row
            token = self._budgeted(row, token)
            row.generated += 1
            row.last = token
            if token in row.request.stop_ids:
                self._finish(row, "stop")
                continue
            row.request.sink(Token(token))
            if row.generated >= row.request.max_tokens or row.length + 1 >= self.context_length:
                self._finish(row, "length")

    @staticmethod
    def _budgeted(row: _Row, token: int) -> int:
        """The token a row takes: its own choice, or the next of the tokens that close an over-budget reasoning."""
        request = row.request
        if request.think_budget is None:
            return token
        if not row.forced and row.thinking and row.generated >= request.think_budget:
            row.forced = list(request.think_close)
        if row.forced:
            token = row.forced.pop(0)
        if token == request.think_end:
            row.thinking = False
        return token

    def _finish(self, row: _Row, reason: str) -> None:
        row.done = True
        row.request.sink(Finished(reason, row.generated))
        row.request.cancelled.set()  # marks the row for _retire
        self._seconds_per_request = 0.9 * self._seconds_per_request + 0.1 * (time.perf_counter() - row.started)

    def _retire(self) -> None:
        """Drop finished and cancelled rows from the batch and the cache; cut all-padding columns."""
        keep = [i for i, row in enumerate(self._rows) if not row.request.cancelled.is_set()]
        if len(keep) == len(self._rows):
            return
        for row in (r for r in self._rows if r.request.cancelled.is_set() and not r.done):
            row.request.sink(Finished("cancelled", row.generated))
        if not keep:
            self._rows, self._cache, self._mask = [], None, None
            return
        self._mask = kv_batch.keep_rows(self._cache, self._mask, keep)
        self._mask = kv_batch.trim_left(self._cache, self._mask)
        self._rows = [self._rows[i] for i in keep]

    # -- start-up -------------------------------------------------------------------------------------------------
    @property
    def _config(self):
        return self.model.config

    def _warm_up(self) -> int:
        """One tiny forward: checks the cache layout is one this engine can reshape, records each layer's KV
        shape, and measures KV bytes per token."""
        cache = DynamicCache(config=self._config)
        with torch.inference_mode():
            ids = torch.zeros((1, 1), dtype=torch.long)
            extra = {"adapter_names": [BASE_ADAPTER]} if self.mixed_adapters else {}
            self.model(input_ids=ids.to(self.device), use_cache=True, logits_to_keep=1,
                       **{self._cache_keyword: cache}, **extra)
        kv_batch.check_supported(cache)
        self._kv_shape = [(layer.keys[0], layer.values[0]) for layer in cache.layers]
        return sum(layer.keys.element_size() * (layer.keys[0].numel() + layer.values[0].numel())
                   for layer in cache.layers)


def _joined_images(requests: list[GenerationRequest]) -> dict | None:
    """The pixel tensors of a prefill's rows in row order: the model fills the batch's image-token runs in
    order (row by row), so concatenating each row's images keeps every image at its own tokens."""
    with_images = [r.image_inputs for r in requests if r.image_inputs]
    if not with_images:
        return None
    return {k: torch.cat([inputs[k] for inputs in with_images]) for k in with_images[0]}


def cache_keyword(model) -> str:
    """The name forward() takes the KV cache by: `cache` from transformers 5.25 on (where `past_key_values` warns
    until its removal in 5.40), `past_key_values` before."""
    parameters = inspect.signature(unwrap_peft(model).forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"
