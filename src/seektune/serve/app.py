"""The OpenAI-compatible HTTP app: routes, the gate every request passes (request id, API key, body size, rate
limit, one access-log line, metrics), and OpenAI-shaped errors for everything that goes wrong."""

from __future__ import annotations

import json
import logging
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException

from seektune.data.render import Renderer
from seektune.errors import DataError
from seektune.serve import schemas
from seektune.serve.access import ApiKeys, RateLimiter
from seektune.serve.bridge import Delta, Done, Generation
from seektune.serve.cache import ResponseCache
from seektune.serve.catalog import Catalog, ServedModel
from seektune.serve.engine.base import Engine
from seektune.serve.errors import ApiError
from seektune.serve.images import prompt_images
from seektune.serve.metrics import Metrics
from seektune.serve.options import ServeOptions

access_log = logging.getLogger("seektune.serve.access")
OPEN_PATHS = {"/health"}
ROUTES = {"/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions"}


class Gate:
    """Pure ASGI middleware (it must not buffer streamed responses): every request gets an id, a key check
    (all routes but /health), a bounded body, the per-key rate limit, a metrics count and one access-log line."""

    def __init__(self, app, keys: ApiKeys, limiter: RateLimiter, max_body: int, metrics: Metrics):
        self.app, self.keys, self.limiter, self.max_body, self.metrics = app, keys, limiter, max_body, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = uuid.uuid4().hex[:16]
        start, status = time.perf_counter(), {"code": 500}
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        who = "-"

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            refusal = None
            if path not in OPEN_PATHS and self.keys.required:
                who = self.keys.label(headers.get("authorization")) or "-"
                if who == "-":
                    refusal = ApiError(401, "invalid or missing API key (send 'Authorization: Bearer <key>')",
                                       code="invalid_api_key")
            if refusal is None and scope["method"] == "POST":
                receive, refusal = await self._bounded_body(headers, receive)
                if refusal is None and (wait := self.limiter.retry_after(who)) > 0:
                    self.metrics.rejected.labels("rate_limit").inc()
                    refusal = ApiError(429, f"rate limit of {self.limiter.per_minute} requests/minute reached",
                                       kind="rate_limit_error", code="rate_limit_exceeded",
                                       headers={"Retry-After": str(int(wait + 0.999))})
            if refusal is not None:
                await refusal.response()(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            self.metrics.requests.labels(path if path in ROUTES else "other", str(status["code"])).inc()
            access_log.info("%s %s %s %s %d %.0fms", rid, who, scope["method"], path, status["code"],
                            1000 * elapsed)

    async def _bounded_body(self, headers: dict, receive):
        """Read the body up to the limit (a bigger one is refused unread), then replay it to the app."""
        declared = headers.get("content-length")
        too_big = ApiError(400, f"request body over the server's limit of {self.max_body // 1024} KiB",
                           code="request_too_large")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return receive, too_big
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return receive, None   # client gone; the app sees the disconnect
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return receive, too_big
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay, None


class _EventStream(StreamingResponse):
    """An SSE response that cancels its generation however the response ends, also when the client leaves
    before the first event was produced (the event generator then never runs its own cleanup)."""

    def __init__(self, events, gen: Generation):
        super().__init__(events, media_type="text/event-stream")
        self.gen = gen

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.gen.request.cancel()


def _sse(payload: dict | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)}\n\n"


def create_app(catalog: Catalog, engine: Engine, opts: ServeOptions, keys: ApiKeys) -> FastAPI:
    cache = ResponseCache(opts.cache_entries)
    metrics = Metrics(engine, cache)
    renderers = {name: Renderer(m.tokenizer, max_length=1 << 30, images=m.images)
                 for name, m in catalog.models.items() if m.has_chat_template}
    started = int(time.time())
    ready = {"now": False}

    @asynccontextmanager
    async def lifespan(app):
        engine.start()
        ready["now"] = True
        yield
        ready["now"] = False
        engine.stop()
        logging.getLogger("seektune.serve").info("stopped after finishing the requests in flight")

    app = FastAPI(title="seektune", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(Gate, keys=keys, limiter=RateLimiter(opts.rate_limit), max_body=opts.max_body_kb * 1024,
                       metrics=metrics)

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = first.get("msg", "invalid request").removeprefix("Value error, ")
        return ApiError(400, f"{where}: {message}" if where else message, param=where or None,
                        code="invalid_parameter").response()

    @app.exception_handler(Exception)
    async def unexpected(request, exc: Exception):
        logging.getLogger("seektune.serve").exception("unexpected error")
        return ApiError(500, f"internal error: {type(exc).__name__}", kind="server_error").response()

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return ApiError(exc.status_code, str(exc.detail), code="not_found" if exc.status_code == 404 else None
                        ).response()

    def lookup(name: str) -> ServedModel:
        if name not in catalog.models:
            raise ApiError(400, f"the model '{name}' is not served here; models: {', '.join(catalog.models)}",
                           param="model", code="model_not_found")
        return catalog.models[name]

    def token_budget(prompt_tokens: int, asked: int | None) -> int:
        context = engine.context_length
        limit = asked if asked is not None else min(opts.max_tokens_default, context - prompt_tokens)
        if prompt_tokens + limit > context or limit < 1:
            raise ApiError(400, f"this model's maximum context length is {context} tokens; the request has "
                           f"{prompt_tokens} prompt tokens and asks for {asked if asked is not None else 'at least 1'}"
                           " more", param="max_tokens", code="context_length_exceeded")
        return limit

    def generation(request: Request, served: ServedModel, body: schemas.SamplingRequest, prompt_ids: list[int],
                   route: str, split_reasoning: bool, images=None) -> Generation:
        gen = Generation(served, prompt_ids, token_budget(len(prompt_ids), body.token_limit),
                         temperature=body.temperature, top_p=body.top_p, seed=body.seed, stops=body.stops,
                         route=route, split_reasoning=split_reasoning,
                         max_reasoning_tokens=body.max_reasoning_tokens, images=images, engine=engine, cache=cache,
                         metrics=metrics, timeout_s=opts.request_timeout, disconnected=request.is_disconnected)
        gen.submit()
        return gen

    @app.get("/health")
    async def health():
        if not ready["now"]:
            return JSONResponse({"status": "loading"}, status_code=503)
        return {"status": "ok", "models": list(catalog.models)}

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    def model_card(served: ServedModel) -> dict:
        return {"id": served.name, "object": "model", "created": started, "owned_by": "seektune",
                "description": served.description}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_card(m) for m in catalog.models.values()]}

    @app.get("/v1/models/{name}")
    async def model(name: str):
        return model_card(lookup(name))

    @app.post("/v1/chat/completions")
    async def chat(request: Request, body: schemas.ChatCompletionRequest):
        served = lookup(body.model)
        if served.name not in renderers:
            raise ApiError(400, f"{served.name} has no chat template; use /v1/completions", param="model")
        urls = [url for m in body.messages for url in m.image_urls()]
        images = prompt_images(served, urls)
        try:
            prompt_ids = renderers[served.name].prompt_ids([m.as_template_message() for m in body.messages],
                                                           urls if images else [])
        except (DataError, ValueError, TypeError) as exc:   # jinja's raise_exception (e.g. roles must alternate)
            raise ApiError(400, f"messages: {exc}", param="messages") from None
        gen = generation(request, served, body, prompt_ids, "chat", split_reasoning=True, images=images)
        rid = schemas.new_id("chatcmpl")
        if body.stream:
            return _EventStream(_chat_stream(gen, rid, served.name, body), gen)
        reasoning, content, done = await _collect(gen)
        return schemas.chat_response(rid, served.name, content, reasoning if gen.reasoning_on else None,
                                     done.finish_reason, schemas.usage(len(prompt_ids), done.completion_tokens))

    @app.post("/v1/completions")
    async def complete(request: Request, body: schemas.CompletionRequest):
        served = lookup(body.model)
        tokenizer = served.tokenizer
        if isinstance(body.prompt, str):
            prompt_ids = tokenizer(body.prompt)["input_ids"]
        else:
            prompt_ids = list(body.prompt)
            if not prompt_ids or not all(0 <= t < len(tokenizer) for t in prompt_ids):
                raise ApiError(400, f"prompt: token ids must be in [0, {len(tokenizer)})", param="prompt")
        if not prompt_ids:
            raise ApiError(400, "prompt: empty", param="prompt")
        gen = generation(request, served, body, prompt_ids, "completion", split_reasoning=False)
        rid = schemas.new_id("cmpl")
        if body.stream:
            return _EventStream(_completion_stream(gen, rid, served.name, body), gen)
        _, content, done = await _collect(gen)
        return schemas.completion_response(rid, served.name, content, done.finish_reason,
                                           schemas.usage(len(prompt_ids), done.completion_tokens))

    return app


async def _collect(gen: Generation) -> tuple[str, str, Done]:
    reasoning, content = [], []
    async for item in gen.deltas():
        if isinstance(item, Delta):
            reasoning.append(item.reasoning)
            content.append(item.content)
        else:
            return "".join(reasoning), "".join(content), item
    raise AssertionError("deltas() ends with Done")


async def _stream(gen: Generation, rid: str, model: str, body, obj: str, chunk):
    """SSE events around `chunk(delta | None, finish)`; an error after the stream began is sent as an error event
    (the status line is already out)."""
    try:
        async for item in gen.deltas():
            if isinstance(item, Delta):
                yield _sse(chunk(item, None))
            else:
                yield _sse(chunk(None, item.finish_reason))
                if body.stream_options and body.stream_options.include_usage:
                    yield _sse(schemas.usage_chunk(rid, model, obj, schemas.usage(len(gen.prompt_ids),
                                                                               item.completion_tokens)))
    except ApiError as exc:
        yield _sse(exc.body())
    yield _sse("[DONE]")


def _chat_stream(gen: Generation, rid: str, model: str, body):
    first = {"sent": False}

    def chunk(delta: Delta | None, finish: str | None) -> dict:
        if delta is None:
            return schemas.chat_chunk(rid, model, {}, finish)
        out = {} if first["sent"] else {"role": "assistant"}
        first["sent"] = True
        if delta.reasoning:
            out["reasoning_content"] = delta.reasoning
        if delta.content or not delta.reasoning:
            out["content"] = delta.content
        return schemas.chat_chunk(rid, model, out)

    return _stream(gen, rid, model, body, "chat.completion.chunk", chunk)


def _completion_stream(gen: Generation, rid: str, model: str, body):
    def chunk(delta: Delta | None, finish: str | None) -> dict:
        return schemas.completion_chunk(rid, model, delta.content if delta else "", finish)

    return _stream(gen, rid, model, body, "text_completion", chunk)
