"""Load what is served, check the address is safe to bind, and run the app under uvicorn until SIGINT/SIGTERM
(uvicorn stops accepting, lets in-flight requests finish for `shutdown_timeout` seconds, then the engine stops)."""

from __future__ import annotations

import ipaddress
import logging
import socket

import torch

from seektune.errors import ConfigError
from seektune.serve.access import ApiKeys
from seektune.serve.catalog import Catalog, load_catalog
from seektune.serve.engine.batched import BatchedEngine
from seektune.serve.options import ServeOptions

log = logging.getLogger("seektune.serve")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(opts: ServeOptions, keys: ApiKeys) -> None:
    """Refuse to put an open server on a network: a non-loopback address needs keys, or --insecure said aloud."""
    if not is_loopback(opts.host) and not keys.required and not opts.insecure:
        raise ConfigError(f"--host {opts.host} would expose the server without API keys; pass --api-key-file (or "
                          "set SEEKTUNE_API_KEYS), or --insecure if a gateway in front checks callers")


def pick_dtype(name: str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return getattr(torch, name)


def build_engine(catalog: Catalog, opts: ServeOptions) -> BatchedEngine:
    if torch.cuda.is_available():
        catalog.model.to("cuda")
    return BatchedEngine(catalog.model, catalog.context_length, max_batch=opts.max_batch, max_queue=opts.max_queue,
                         kv_budget_mb=opts.kv_cache_mb, prefix_cache_mb=opts.prefix_cache_mb,
                         mixed_adapters=catalog.mixed_adapters)


def serve(refs: list[str], opts: ServeOptions) -> None:
    import uvicorn

    from seektune.serve.app import create_app

    keys = ApiKeys.load(opts.api_key_file)
    check_exposure(opts, keys)
    catalog = load_catalog(refs, base=opts.base, merge=not opts.no_merge, dtype=pick_dtype(opts.dtype))
    engine = build_engine(catalog, opts)
    app = create_app(catalog, engine, opts, keys)
    family = socket.AF_INET6 if ":" in opts.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((opts.host, opts.port))
        sock.listen(2048)   # connections made from now on wait in the backlog until uvicorn accepts them
    except OSError as exc:
        raise ConfigError(f"cannot listen on {opts.host}:{opts.port}: {exc.strerror}; pick another --port") from None
    port = sock.getsockname()[1]
    shown = f"[{opts.host}]" if family == socket.AF_INET6 else opts.host
    log.info("serving %s on http://%s:%d/v1 (context %d tokens, %d batch slots, keys %s)", ", ".join(catalog.models),
             shown, port, engine.context_length, opts.max_batch, "required" if keys.required else "off")
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=opts.shutdown_timeout)
    uvicorn.Server(config).run(sockets=[sock])
