"""The HTTP app in-process over a scripted engine (any Engine implementation plugs in the same way): R1
reasoning comes back apart from the answer, limits answer 429/504 with OpenAI error bodies, greedy repeats are
cached, and unsupported parameters are refused by name."""

import copy
import threading

import pytest
from fastapi.testclient import TestClient

from seektune.models.templates import named_template
from seektune.serve.access import ApiKeys
from seektune.serve.app import create_app
from seektune.serve.catalog import Catalog, _served
from seektune.serve.engine.base import Engine, Finished, QueueFull, Token
from seektune.serve.options import ServeOptions

REASONED = "\nThe user asks for the code; the notes say amber.</think>\n\nCode Amber."


class ScriptedEngine(Engine):
    """Answers every request with the tokens of `script` (or fails / stalls / is full, as told)."""

    context_length = 4096

    def __init__(self, tokenizer, script: str, mode: str = "answer"):
        self.ids = tokenizer(script, add_special_tokens=False)["input_ids"]
        self.mode, self.submitted = mode, 0

    def submit(self, request):
        if self.mode == "full":
            raise QueueFull(7.2)
        self.submitted += 1
        threading.Thread(target=self._run, args=(request,)).start()

    def _run(self, request):
        if self.mode == "stall":
            request.cancelled.wait(10)
            request.sink(Finished("cancelled", 0))
        elif self.mode == "fail":
            request.sink(Finished("error", 0, "RuntimeError: out of memory"))
        else:
            ids = self.ids[:request.max_tokens]
            for token in ids:
                request.sink(Token(token))
            request.sink(Finished("stop" if len(ids) < request.max_tokens else "length", len(ids) + 1))

    def start(self):
        pass

    def stop(self):
        pass

    queue_depth = 0
    active = 0


@pytest.fixture(scope="module")
def r1(deepseek_tok):
    tok = copy.deepcopy(deepseek_tok)
    tok.chat_template = named_template("deepseek-r1")
    return tok


def _app(tokenizer, mode="answer", script=REASONED, **options):
    engine = ScriptedEngine(tokenizer, script, mode)
    catalog = Catalog(None, {"legal-r1": _served("legal-r1", None, tokenizer, "test")}, 4096, False)
    return create_app(catalog, engine, ServeOptions(**options), ApiKeys([])), engine


def _chat(http, **kw):
    return http.post("/v1/chat/completions", json={"model": "legal-r1", "temperature": 0,
                                                   "messages": [{"role": "user", "content": "Code?"}], **kw})


def test_r1_reasoning_comes_back_as_reasoning_content(r1):
    app, _ = _app(r1)
    with TestClient(app) as http:
        message = _chat(http).json()["choices"][0]["message"]
        assert message == {"role": "assistant", "content": "Code Amber.",
                           "reasoning_content": "The user asks for the code; the notes say amber."}
        lines = [line for line in _chat(http, stream=True, max_tokens=200).text.splitlines() if line]
    import json

    deltas = [json.loads(line[6:])["choices"][0]["delta"] for line in lines[:-1]]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == message["reasoning_content"]
    assert "".join(d.get("content") or "" for d in deltas) == "Code Amber."
    assert "<think>" not in lines[-2] and lines[-1] == "data: [DONE]"


def test_health_is_ready_only_once_the_engine_runs(r1):
    app, _ = _app(r1)
    assert TestClient(app).get("/health").status_code == 503   # lifespan not started: not ready
    with TestClient(app) as http:
        assert http.get("/health").json()["status"] == "ok"


def test_greedy_repeats_are_answered_from_the_cache(r1):
    app, engine = _app(r1)
    with TestClient(app) as http:
        first, second = _chat(http).json(), _chat(http).json()
        _chat(http, temperature=0.7)   # sampled: never cached
        metrics = http.get("/metrics").text
    assert first["choices"] == second["choices"] and first["usage"] == second["usage"]
    assert engine.submitted == 2
    assert "seektune_cache_hits 1.0" in metrics


def test_a_full_queue_is_429_with_retry_after(r1):
    app, _ = _app(r1, mode="full")
    with TestClient(app) as http:
        reply = _chat(http)
    assert reply.status_code == 429 and reply.headers["retry-after"] == "8"
    assert reply.json()["error"]["type"] == "rate_limit_error"


def test_per_key_rate_limit(r1):
    app, _ = _app(r1, rate_limit=2)
    with TestClient(app) as http:
        codes = [_chat(http).status_code for _ in range(3)]
        reply = _chat(http)
    assert codes == [200, 200, 429] and int(reply.headers["retry-after"]) >= 1
    assert reply.json()["error"]["code"] == "rate_limit_exceeded"


def test_a_stalled_generation_times_out_with_504(r1):
    app, _ = _app(r1, mode="stall", request_timeout=0.3)
    with TestClient(app) as http:
        reply = _chat(http)
    assert reply.status_code == 504 and reply.json()["error"]["code"] == "request_timeout"


def test_an_engine_failure_is_a_500_with_its_reason(r1):
    app, _ = _app(r1, mode="fail")
    with TestClient(app) as http:
        reply = _chat(http)
    assert reply.status_code == 500 and "out of memory" in reply.json()["error"]["message"]


@pytest.mark.parametrize("body, words", [
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tool calling"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
    ({"messages": []}, "messages"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4"),
    ({"presence_penalty": 0.5}, "not supported"),
    ({"max_tokens": 0}, "max_tokens"),
])
def test_unsupported_or_bad_parameters_are_named(r1, body, words):
    app, _ = _app(r1)
    with TestClient(app) as http:
        reply = _chat(http, **body)
    assert reply.status_code == 400 and words in reply.json()["error"]["message"]


def test_clients_that_send_neutral_defaults_are_served(r1):
    app, _ = _app(r1)
    with TestClient(app) as http:
        reply = _chat(http, n=1, presence_penalty=0, frequency_penalty=0, user="u1", logprobs=False,
                      response_format={"type": "text"}, messages=[
                          {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
                          {"role": "user", "content": "Code?"}])
    assert reply.status_code == 200


def test_image_url_parts_become_placeholders_like_training_data():
    from pydantic import ValidationError

    from seektune.serve.schemas import ChatMessage

    url = "data:image/png;base64,AAAA"
    message = ChatMessage(role="user", content=[{"type": "image_url", "image_url": {"url": url, "detail": "low"}},
                                                {"type": "text", "text": "What digit is this?"}])
    assert message.as_template_message() == {"role": "user", "content": "<image>\nWhat digit is this?"}
    assert message.image_urls() == [url]
    with pytest.raises(ValidationError, match="image_url parts go in user messages"):
        ChatMessage(role="assistant", content=[{"type": "image_url", "image_url": {"url": url}}])
    with pytest.raises(ValidationError):
        ChatMessage(role="user", content=[{"type": "input_audio", "input_audio": {"data": "x"}}])
