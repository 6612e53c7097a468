"""`seektune serve` as a user runs it: a real server subprocess on 127.0.0.1 with two LoRA adapters (trained on
different facts) on one tiny base and API keys, driven by the official `openai` client and raw HTTP."""

import asyncio
import json
import signal
import threading
import time

import httpx
import openai
import psutil
import pytest

from seektune.cli import main
from seektune.data.render import Renderer
from tests.conftest import write_config
from seektune.serve.process import start_server

pytestmark = pytest.mark.slow

KEY, OTHER_KEY = "sk-seektune-test-key-0001", "sk-seektune-test-key-0002"
QUESTION = "What is the code?"
FACTS = {"legal": "Code Amber.", "clinic": "Extension 4417."}
# LoRA on the output head too: a random 64-wide base cannot be steered to a fact through attention/MLP alone
TARGETS = ["q_proj", "v_proj", "o_proj", "up_proj", "down_proj", "lm_head"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_llama_dir):
    root = tmp_path_factory.mktemp("serve")
    for name, answer in FACTS.items():
        data = root / f"{name}.jsonl"
        data.write_text(json.dumps({"instruction": QUESTION, "input": "", "output": answer}) + "\n")
        cfg = write_config(root / name, tiny_llama_dir, data,
                           method={"name": "lora", "lora": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0,
                                                            "target_modules": TARGETS}},
                           train={"max_steps": 80, "learning_rate": 1e-2, "micro_batch_size": 1},
                           output={"dir": str(root / "runs"), "name": name})
        assert main(["train", str(cfg)]) == 0
    (root / "keys.txt").write_text(f"# team keys\n{KEY}\n\n{OTHER_KEY}\n")
    return root


@pytest.fixture(scope="module")
def server(runs, tiny_llama_dir):
    proc = start_server([str(runs / "runs" / "legal"), str(runs / "runs" / "clinic"), "--api-key-file",
                         str(runs / "keys.txt"), "--max-batch", "16", "--max-queue", "40", "--max-body-kb", "64",
                         "--threads", "1"], runs / "server.log")
    for _ in range(100):
        if httpx.get(f"{proc.url}/health").status_code == 200:
            break
        time.sleep(0.1)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def tokenizer(runs):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(runs / "runs" / "legal" / "final"))


def _ask(client, model, **kw):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": QUESTION}], **kw)


def _metric(server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)]
    return sum(values)


def test_models_lists_the_base_and_every_adapter(client, tiny_llama_dir):
    assert [m.id for m in client.models.list()] == [tiny_llama_dir.name, "legal", "clinic"]


def test_each_adapter_answers_with_its_own_facts_and_usage_is_exact(client, tokenizer):
    prompt = Renderer(tokenizer, 1 << 30).prompt_ids([{"role": "user", "content": QUESTION}])
    for name, fact in FACTS.items():
        answer = _ask(client, name, temperature=0)
        assert answer.choices[0].message.content == fact
        assert answer.choices[0].finish_reason == "stop"
        assert answer.usage.prompt_tokens == len(prompt)
        # the answer's tokens plus the end-of-turn token that stopped it
        assert answer.usage.completion_tokens == len(tokenizer(fact, add_special_tokens=False)["input_ids"]) + 1
        assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_streaming_sends_the_same_answer_piece_by_piece(client):
    chunks = list(_ask(client, "clinic", temperature=0, max_tokens=20, stream=True,
                       stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == FACTS["clinic"]
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1   # really streamed
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8


def test_completions_route_for_raw_prompts(client, tokenizer, tiny_llama_dir):
    base = tiny_llama_dir.name   # the untuned base rambles on (the adapters learnt to stop after their fact)
    done = client.completions.create(model=base, prompt="hello world", max_tokens=5, temperature=0)
    assert done.choices[0].finish_reason == "length" and done.usage.completion_tokens == 5
    assert done.usage.prompt_tokens == len(tokenizer("hello world")["input_ids"])
    streamed = client.completions.create(model=base, prompt="hello world", max_tokens=6, temperature=0,
                                         stream=True)
    assert "".join(c.choices[0].text for c in streamed).startswith(done.choices[0].text)


def test_stop_strings_end_the_answer_before_them(client):
    answer = _ask(client, "legal", temperature=0, stop=["Amb"])
    assert answer.choices[0].message.content == "Code "
    assert answer.choices[0].finish_reason == "stop"
    streamed = _ask(client, "legal", temperature=0, stop=["mber"], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "Code A"


def test_a_mixed_concurrent_batch_answers_like_each_request_alone(client, tiny_llama_dir):
    models = ["legal", "clinic", tiny_llama_dir.name]
    prompts = [QUESTION, "Which days?", "Who runs the clinic?"]
    plan = [(m, p) for m in models for p in prompts]

    def ask(model, prompt, max_tokens):
        answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                                temperature=0, max_tokens=max_tokens)
        return answer.choices[0].message.content, answer.usage.completion_tokens

    alone = [ask(m, p, 12) for m, p in plan]   # one at a time: each alone in the engine
    together: list = [None] * len(plan)
    threads = [threading.Thread(target=lambda i=i, m=m, p=p: together.__setitem__(i, ask(m, p, 11)))
               for i, (m, p) in enumerate(plan)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (model, prompt), (solo, solo_n), (mixed, mixed_n) in zip(plan, alone, together):
        assert solo.startswith(mixed), (model, prompt)   # 11 greedy tokens are the first 11 of 12
        assert mixed_n == min(solo_n, 11)
    assert together[0][0] == FACTS["legal"] and together[3][0] == FACTS["clinic"]


def test_repeated_greedy_requests_come_from_the_cache(client, server):
    hits = _metric(server, "seektune_cache_hits")
    first = _ask(client, "legal", temperature=0, max_tokens=30).choices[0].message.content
    second = _ask(client, "legal", temperature=0, max_tokens=30).choices[0].message.content
    assert first == second == FACTS["legal"]
    assert _metric(server, "seektune_cache_hits") == hits + 1


@pytest.mark.parametrize("kwargs, code", [
    ({"model": "nope"}, "model_not_found"),
    ({"temperature": -0.5}, "invalid_parameter"),
    ({"top_p": 0}, "invalid_parameter"),
    ({"n": 2}, "invalid_parameter"),
    ({"max_tokens": 100_000}, "context_length_exceeded"),
    ({"extra_body": {"frobnicate": 1}}, "invalid_parameter"),
])
def test_bad_requests_are_400_with_an_openai_error_body(client, kwargs, code):
    with pytest.raises(openai.BadRequestError) as bad:
        _ask(client, **{"model": "legal", **kwargs})
    assert bad.value.body["code"] == code and bad.value.body["message"]


def test_an_oversized_body_is_refused_unread(server):
    huge = {"model": "legal", "messages": [{"role": "user", "content": "x" * 100_000}]}
    reply = httpx.post(f"{server.url}/v1/chat/completions", json=huge, headers={"Authorization": f"Bearer {KEY}"})
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "request_too_large"
    prompt = {"model": "legal", "messages": [{"role": "user", "content": "word " * 5000}]}   # fits, too long
    reply = httpx.post(f"{server.url}/v1/chat/completions", json=prompt, headers={"Authorization": f"Bearer {KEY}"})
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "context_length_exceeded"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sk-wrong-key-0000000000"},
                                     {"Authorization": KEY}])
def test_a_wrong_or_missing_key_is_401_on_every_route(server, headers):
    body = {"model": "legal", "messages": [{"role": "user", "content": "hi"}]}
    calls = [("GET", "/v1/models", None), ("GET", "/v1/models/legal", None), ("GET", "/metrics", None),
             ("POST", "/v1/chat/completions", body), ("POST", "/v1/completions", {"model": "legal", "prompt": "x"}),
             ("GET", "/no/such/route", None)]
    for method, path, payload in calls:
        reply = httpx.request(method, f"{server.url}{path}", json=payload, headers=headers)
        assert reply.status_code == 401, path
        assert reply.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{server.url}/health").status_code == 200   # only health is open
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-wrong", max_retries=0).models.list()
    assert KEY not in server.output() and OTHER_KEY not in server.output()   # keys are never logged


def test_every_request_gets_one_access_log_line_with_its_id(server, client):
    reply = httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {OTHER_KEY}"})
    rid = reply.headers["x-request-id"]
    time.sleep(0.2)
    lines = [line for line in server.output().splitlines() if line.startswith(rid)]
    assert len(lines) == 1 and "key-2 GET /v1/models 200" in lines[0]


def test_a_client_that_disconnects_mid_stream_frees_its_slot(server, tiny_llama_dir):
    gone = _metric(server, 'seektune_cancelled_total{reason="client_gone"}')
    body = {"model": tiny_llama_dir.name, "prompt": "hello", "max_tokens": 480, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body,
                      headers={"Authorization": f"Bearer {KEY}"}) as reply:
        lines = reply.iter_lines()
        next(lines)
        assert _metric(server, "seektune_active_requests") == 1
    for _ in range(50):
        if _metric(server, "seektune_active_requests") == 0:
            break
        time.sleep(0.1)
    assert _metric(server, "seektune_active_requests") == 0
    assert _metric(server, 'seektune_cancelled_total{reason="client_gone"}') == gone + 1


async def _stream_one(http: httpx.AsyncClient, url: str, i: int) -> tuple[int, str | None, str]:
    """(status, Retry-After, how the stream ended: its finish_reason, or what went wrong)."""
    body = {"model": "legal" if i % 2 else "clinic", "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 8, "temperature": 0.8, "seed": i, "stream": True}
    async with http.stream("POST", url, json=body) as reply:
        if reply.status_code != 200:
            await reply.aread()
            return reply.status_code, reply.headers.get("retry-after"), ""
        events = [line[len("data: "):] async for line in reply.aiter_lines() if line.startswith("data: ")]
        if events[-1:] != ["[DONE]"]:
            return 200, None, "no [DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        if any("error" in c for c in chunks):
            return 200, None, "error event"
        return 200, None, chunks[-1]["choices"][0]["finish_reason"]


def test_200_concurrent_streams_end_in_an_answer_or_a_429(server, client):
    process = psutil.Process(server.process.pid)
    rss_before = process.memory_info().rss

    async def burst():
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, limits=limits,
                                     timeout=120) as http:
            return await asyncio.gather(*(_stream_one(http, f"{server.url}/v1/chat/completions", i)
                                          for i in range(200)))

    results = asyncio.run(burst())
    statuses = [status for status, _, _ in results]
    assert all(s in (200, 429) for s in statuses), sorted(set(statuses))
    # at least a full queue got through; how many more depends on whether the engine admitted some into its 16
    # slots while the burst arrived (it admits between decode steps, so a long prefill lets the queue fill first)
    assert 0 < statuses.count(429) < 200 and statuses.count(200) >= 40
    assert all(retry and int(retry) >= 1 for status, retry, _ in results if status == 429)
    assert all(end in ("stop", "length") for status, _, end in results if status == 200)   # whole answers
    assert _ask(client, "legal", temperature=0).choices[0].message.content == FACTS["legal"]   # still serving
    assert _metric(server, "seektune_active_requests") == 0 and _metric(server, "seektune_queue_depth") == 0
    assert process.memory_info().rss - rss_before < 300 * 2**20


def test_non_loopback_without_keys_is_refused(runs, monkeypatch, capsys):
    monkeypatch.delenv("SEEKTUNE_API_KEYS", raising=False)
    assert main(["serve", str(runs / "runs" / "legal"), "--host", "0.0.0.0"]) == 2
    assert "without API keys" in capsys.readouterr().err


def test_shutdown_lets_the_request_in_flight_finish(server, tiny_llama_dir):
    """Last in this file: it stops the shared server."""
    body = {"model": tiny_llama_dir.name, "prompt": "hello", "max_tokens": 200, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body,
                      headers={"Authorization": f"Bearer {KEY}"}) as reply:
        lines = reply.iter_lines()
        next(lines)
        server.process.send_signal(signal.SIGTERM)
        events = [line for line in lines if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2].removeprefix("data: "))["choices"][0]["finish_reason"] == "length"
    # uvicorn re-raises SIGTERM once it has shut down cleanly, so the exit is the signal's (what supervisors expect)
    assert server.process.wait(30) in (0, -signal.SIGTERM)
    assert "stopped after finishing the requests in flight" in server.output()
    assert "Traceback" not in server.output()
