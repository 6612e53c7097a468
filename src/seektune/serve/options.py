"""`seektune serve` options; each field is the flag of the same name (--max-batch ...), checked like a config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from seektune.schema import Section


class ServeOptions(Section):
    host: str = Field("127.0.0.1", description="address to bind; anything but loopback needs API keys or --insecure")
    port: int = Field(8000, ge=0, le=65535, description="port (0: any free port, printed at start)")
    base: str | None = Field(None, description="base model the adapters go on (default: the one they record)")
    api_key_file: str | None = Field(None, description="file of API keys, one per line (also: $SEEKTUNE_API_KEYS)")
    insecure: bool = Field(False, description="allow a non-loopback address without API keys")
    no_merge: bool = Field(False, description="serve a single adapter unmerged (also serves the base beside it)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights dtype (auto: bfloat16 on a GPU, float32 on CPU)")
    max_batch: int = Field(32, ge=1, description="requests generated together (batch slots)")
    max_queue: int = Field(64, ge=0, description="requests waiting for a slot before new ones get 429")
    kv_cache_mb: int = Field(1024, ge=1, description="memory for the batch's KV cache; bounds slots x length")
    prefix_cache_mb: int = Field(256, ge=0, description="memory for reusing prompt starts' KV (0: off)")
    max_tokens_default: int = Field(512, ge=1, description="completion limit when a chat request sets none")
    request_timeout: float = Field(300.0, gt=0, description="seconds before a request is cut off (504)")
    rate_limit: int = Field(0, ge=0,
                            description="requests per minute per API key, or in all without keys (0: no limit)")
    max_body_kb: int = Field(1024, ge=1, description="largest request body accepted")
    cache_entries: int = Field(1024, ge=0, description="answers to greedy requests kept for repeats (0: off)")
    shutdown_timeout: float = Field(30.0, ge=0, description="seconds in-flight requests get to finish on shutdown")
    threads: int = Field(0, ge=0, description="torch threads (0: one per core)")
