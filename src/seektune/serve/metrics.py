"""Prometheus metrics of one server (its own registry, so several apps in one process do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

disable_created_metrics()  # the *_created series double the output and no dashboard reads them

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)


class Metrics:
    def __init__(self, engine, cache):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("seektune_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=r)
        self.prompt_tokens = Counter("seektune_prompt_tokens", "prompt tokens of generation requests", ["model"],
                                     registry=r)
        self.completion_tokens = Counter("seektune_completion_tokens", "generated tokens", ["model"], registry=r)
        self.rejected = Counter("seektune_rejected", "requests refused before generation", ["reason"], registry=r)
        self.cancelled = Counter("seektune_cancelled", "generations stopped early (client gone, timeout)",
                                 ["reason"], registry=r)
        self.ttft = Histogram("seektune_time_to_first_token_seconds", "request arrival to first token",
                              buckets=_LATENCY_BUCKETS, registry=r)
        self.latency = Histogram("seektune_request_seconds", "request arrival to last token",
                                 buckets=_LATENCY_BUCKETS, registry=r)
        Gauge("seektune_queue_depth", "requests waiting for a batch slot", registry=r).set_function(
            lambda: engine.queue_depth)
        Gauge("seektune_active_requests", "requests generating now", registry=r).set_function(lambda: engine.active)
        Gauge("seektune_prefix_reused_tokens", "prompt tokens whose KV was reused instead of prefilled",
              registry=r).set_function(lambda: engine.prefix_reused_tokens)
        Gauge("seektune_cache_hits", "response cache hits", registry=r).set_function(lambda: cache.hits)
        Gauge("seektune_cache_misses", "response cache misses", registry=r).set_function(lambda: cache.misses)
        Gauge("seektune_cache_entries", "answers in the response cache", registry=r).set_function(lambda: len(cache))

    def render(self) -> bytes:
        return generate_latest(self.registry)
