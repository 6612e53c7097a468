"""The continuous-batching engine: rows that join and leave a running batch, or run different adapters side by
side, produce exactly the greedy tokens each request produces alone; seeds repeat; cancelled rows free their
slot; the queue and the KV budget are bounded."""

import threading

import pytest
import torch

from seektune.serve.engine.base import Finished, GenerationRequest, QueueFull, Token
from seektune.serve.engine.batched import BatchedEngine

PROMPTS = ["hello world the", "The clinic gives flu vaccinations on", "What", "Patients must fast for ten hours",
           "Chest pain is triaged as Code Amber. The nurse line is"]


class Collector:
    def __init__(self, count: int):
        self.tokens: dict[int, list[int]] = {i: [] for i in range(count)}
        self.finished: dict[int, Finished] = {}
        self._done = threading.Event()
        self._count = count

    def sink(self, i: int):
        def receive(event):
            if isinstance(event, Token):
                self.tokens[i].append(event.id)
            else:
                self.finished[i] = event
                if len(self.finished) == self._count:
                    self._done.set()
        return receive

    def wait(self) -> "Collector":
        assert self._done.wait(60), f"only {len(self.finished)} of {self._count} finished"
        return self


@pytest.fixture(scope="module")
def base(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()


@pytest.fixture(scope="module")
def two_adapters(tiny_llama_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    config = dict(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "lm_head"], init_lora_weights=False)
    model = get_peft_model(model, LoraConfig(**config), adapter_name="alpha")
    model.add_adapter("beta", LoraConfig(**config))
    return model.eval()


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _alone(model, ids, n):
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
    return out[0, len(ids):].tolist()


def _run(engine, requests):
    collector = Collector(len(requests))
    engine.start()
    try:
        for i, kwargs in enumerate(requests):
            engine.submit(GenerationRequest(sink=collector.sink(i), **kwargs))
        return collector.wait()
    finally:
        engine.stop()


def test_rows_joining_and_leaving_match_greedy_generate_alone(base, tiny_tokenizer):
    prompts = [_ids(tiny_tokenizer, p) for p in PROMPTS]
    lengths = [9, 14, 5, 20, 11]   # rows end at different steps; 2 slots, so later rows join a running batch
    got = _run(BatchedEngine(base, 512, max_batch=2),
               [dict(prompt_ids=p, max_tokens=n) for p, n in zip(prompts, lengths)])
    for i, (p, n) in enumerate(zip(prompts, lengths)):
        assert got.tokens[i] == _alone(base, p, n), f"request {i}"
        assert got.finished[i] == Finished("length", n)


def test_a_mixed_adapter_batch_matches_each_adapter_alone(two_adapters, tiny_tokenizer):
    prompts = [_ids(tiny_tokenizer, p) for p in PROMPTS[:3]]
    plan = [(p, adapter) for p in prompts for adapter in ("alpha", "beta", None)]
    got = _run(BatchedEngine(two_adapters, 512, max_batch=16, mixed_adapters=True),
               [dict(prompt_ids=p, max_tokens=8, adapter=a) for p, a in plan])
    outputs = set()
    for i, (p, adapter) in enumerate(plan):
        if adapter is None:
            with two_adapters.disable_adapter():
                expected = _alone(two_adapters, p, 8)
        else:
            two_adapters.set_adapter(adapter)
            expected = _alone(two_adapters, p, 8)
        assert got.tokens[i] == expected, f"prompt {i // 3} adapter {adapter}"
        outputs.add((i // 3, tuple(expected)))
    assert len(outputs) == len(plan)   # the adapters really answer differently


def test_a_seeded_sample_repeats_whatever_shares_its_batch(base, tiny_tokenizer):
    ids = _ids(tiny_tokenizer, PROMPTS[0])
    sampled = dict(prompt_ids=ids, max_tokens=12, temperature=1.0, top_p=0.9, seed=7)
    alone = _run(BatchedEngine(base, 512), [sampled]).tokens[0]
    crowd = _run(BatchedEngine(base, 512), [dict(prompt_ids=_ids(tiny_tokenizer, p), max_tokens=12,
                                                 temperature=1.0) for p in PROMPTS[1:]] + [sampled])
    assert crowd.tokens[len(PROMPTS) - 1] == alone
    other_seed = _run(BatchedEngine(base, 512), [{**sampled, "seed": 8}]).tokens[0]
    assert other_seed != alone


def test_generation_ends_at_a_stop_token(base, tiny_tokenizer):
    ids = _ids(tiny_tokenizer, PROMPTS[1])
    greedy = _alone(base, ids, 6)
    got = _run(BatchedEngine(base, 512), [dict(prompt_ids=ids, max_tokens=50, stop_ids=frozenset({greedy[3]}))])
    first_stop = greedy.index(greedy[3])
    assert got.tokens[0] == greedy[:first_stop]           # the stop token itself is not text
    assert got.finished[0] == Finished("stop", first_stop + 1)   # but it was generated, and counts


def test_a_cancelled_row_frees_its_slot_for_the_queue(base, tiny_tokenizer):
    engine = BatchedEngine(base, 512, max_batch=1)
    collector = Collector(2)
    long = GenerationRequest(_ids(tiny_tokenizer, PROMPTS[0]), 400, collector.sink(0))
    started = threading.Event()

    def first_sink(event):
        started.set()
        collector.sink(0)(event)

    long.sink = first_sink
    engine.start()
    try:
        engine.submit(long)
        engine.submit(GenerationRequest(_ids(tiny_tokenizer, PROMPTS[1]), 3, collector.sink(1)))
        assert started.wait(30)
        assert engine.queue_depth == 1   # one slot, taken
        long.cancel()
        collector.wait()
    finally:
        engine.stop()
    assert collector.finished[0].reason == "cancelled" and collector.finished[0].completion_tokens < 400
    assert collector.finished[1] == Finished("length", 3)
    assert engine.active == 0 and engine.queue_depth == 0


def test_the_queue_is_bounded(base):
    engine = BatchedEngine(base, 512, max_queue=2)   # not started: nothing leaves the queue
    for _ in range(2):
        engine.submit(GenerationRequest([5, 6], 4, lambda e: None))
    with pytest.raises(QueueFull) as full:
        engine.submit(GenerationRequest([5, 6], 4, lambda e: None))
    assert full.value.retry_after_s >= 1


def test_the_kv_budget_bounds_rows_and_context(base, tiny_tokenizer):
    per_token = 2 * 2 * 2 * 16 * 4   # layers x (k, v) x kv heads x head dim x fp32 bytes
    engine = BatchedEngine(base, 512, kv_budget_mb=1, max_batch=32)
    assert engine.budget_tokens == (1 << 20) // per_token and engine.context_length == 512
    small = BatchedEngine(base, 512, kv_budget_mb=1)
    small.budget_tokens = 60   # room for two rows of 30 tokens at a time
    prompts = [_ids(tiny_tokenizer, p)[:10] for p in PROMPTS]
    peak = []
    original = small._decode

    def watch():
        peak.append(small.active)
        original()

    small._decode = watch
    got = _run(small, [dict(prompt_ids=p, max_tokens=20) for p in prompts])
    assert max(peak) == 2 and all(f.reason == "length" for f in got.finished.values())
    for i, p in enumerate(prompts):
        assert got.tokens[i] == _alone(base, p, 20)


def test_prompts_that_share_a_start_reuse_its_kv_and_answer_the_same(base, tiny_tokenizer):
    system = _ids(tiny_tokenizer, "Chest pain is triaged as Code Amber. The nurse line is extension 4417. ")
    prompts = [system + _ids(tiny_tokenizer, q) for q in ("Which days?", "How long?", "Where is it?", "Who?")]
    prompts.append(prompts[0] + _ids(tiny_tokenizer, " Tuesdays. And the code?"))   # a conversation going on
    engine = BatchedEngine(base, 512, max_batch=2)
    got = _run(engine, [dict(prompt_ids=p, max_tokens=10) for p in prompts])
    for i, p in enumerate(prompts):
        assert got.tokens[i] == _alone(base, p, 10), f"request {i}"
    # the first two are prefilled together with nothing stored; each later one reuses at least the system prompt,
    # the conversation its whole first turn
    assert engine.prefixes.reused_tokens >= 2 * len(system) + len(prompts[0]) - 1
    off = BatchedEngine(base, 512, max_batch=2, prefix_cache_mb=0)
    assert _run(off, [dict(prompt_ids=p, max_tokens=10) for p in prompts]).tokens == got.tokens
    assert off.prefixes.reused_tokens == 0


def test_a_failed_step_fails_its_rows_and_the_engine_keeps_serving(base, tiny_tokenizer):
    engine = BatchedEngine(base, 512)
    original = engine._forward
    failed, after = Collector(2), Collector(1)

    def flaky(*args, **kwargs):   # fails until both first requests have failed (in one step or two)
        if len(failed.finished) < 2:
            raise RuntimeError("out of memory")
        return original(*args, **kwargs)

    engine._forward = flaky
    ids = _ids(tiny_tokenizer, PROMPTS[0])
    engine.start()
    try:
        for i in range(2):
            engine.submit(GenerationRequest(ids, 5, failed.sink(i)))
        failed.wait()
        engine.submit(GenerationRequest(ids, 5, after.sink(0)))
        after.wait()
    finally:
        engine.stop()
    assert [f.reason for f in failed.finished.values()] == ["error", "error"]
    assert "out of memory" in failed.finished[0].error
    assert after.tokens[0] == _alone(base, ids, 5) and engine.active == 0


def test_a_thinking_budget_writes_the_close_for_the_model(base, tiny_tokenizer):
    ids = _ids(tiny_tokenizer, PROMPTS[1])
    close = (7, 8, 9)   # stands for "\n</think>\n\n"; 8 for </think>
    got = _run(BatchedEngine(base, 512), [dict(prompt_ids=ids, max_tokens=9, think_budget=3, think_open=True,
                                               think_close=close, think_end=8)])
    tokens = got.tokens[0]
    assert tokens[:3] == _alone(base, ids, 3) and tuple(tokens[3:6]) == close
    assert tokens[6:] == _alone(base, ids + tokens[:6], 3)   # the answer goes on from the closed block
    assert got.finished[0] == Finished("length", 9)
