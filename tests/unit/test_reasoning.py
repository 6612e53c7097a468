"""R1-style reasoning in every shape it comes in: read into one form, rendered in each template's own shape
(the real DeepSeek tokenizer with the official R1 and V3 templates, Qwen3's, and templates without reasoning),
trained, masked or dropped, and checked by check-template."""

import copy
import json

import pytest

from seektune.data.formats import ReadReport, normalise, read_file
from seektune.data.reasoning import parse_generated, split_inline
from seektune.data.render import IGNORE, Renderer
from seektune.errors import DataError
from seektune.evaluate.template_check import TemplateReport, check_prefixes, check_reasoning
from seektune.models.templates import named_template

Q, R, A = "试用期最长多久？", "劳动合同法第十九条规定试用期上限。", "最长不超过六个月。"
R1_TARGET = f"{R}\n</think>\n\n{A}<｜end▁of▁sentence｜>"
INLINE_TARGET = f"<think>\n{R}\n</think>\n\n{A}"

# every shape a record carries reasoning in -> the same internal message
SHAPES = {
    "inline, tight (the reported bug)": {"messages": [{"role": "user", "content": Q},
                                                      {"role": "assistant", "content": f"<think>{R}</think>{A}"}]},
    "inline, R1's own whitespace": {"messages": [{"role": "user", "content": Q},
                                                 {"role": "assistant", "content": f"<think>\n{R}\n</think>\n\n{A}"}]},
    "inline, spaces": {"conversations": [{"from": "human", "value": Q},
                                         {"from": "gpt", "value": f"  <think> {R} </think>   {A}"}]},
    "reasoning_content field": {"messages": [{"role": "user", "content": Q},
                                             {"role": "assistant", "content": A, "reasoning_content": R}]},
    "reasoning field": {"messages": [{"role": "user", "content": Q},
                                     {"role": "assistant", "content": A, "reasoning": R}]},
    "sharegpt turn field": {"conversations": [{"from": "human", "value": Q},
                                              {"from": "gpt", "value": A, "reasoning_content": R}]},
    "alpaca column": {"instruction": Q, "input": "", "output": A, "think": R},
}

# (template, reasoning mode) -> supervised text, for a record with reasoning and one without
EXPECTED = {
    ("deepseek-r1", "train"): (R1_TARGET, f"\n</think>\n\n{A}<｜end▁of▁sentence｜>"),
    ("deepseek-r1", "mask"): (f"{A}<｜end▁of▁sentence｜>", f"{A}<｜end▁of▁sentence｜>"),
    ("deepseek-r1", "drop"): (f"\n</think>\n\n{A}<｜end▁of▁sentence｜>",) * 2,
    ("deepseek-v3", "train"): (R1_TARGET, f"\n</think>\n\n{A}<｜end▁of▁sentence｜>"),
    ("qwen3", "train"): (f"{INLINE_TARGET}<|im_end|>", f"<think>\n\n</think>\n\n{A}<|im_end|>"),
    ("qwen3", "mask"): (f"{A}<|im_end|>", f"{A}<|im_end|>"),
    ("qwen3", "drop"): (f"<think>\n\n</think>\n\n{A}<|im_end|>",) * 2,
    ("chatml", "train"): (f"{INLINE_TARGET}<|im_end|>", f"{A}<|im_end|>"),
    ("chatml", "mask"): (f"{A}<|im_end|>", f"{A}<|im_end|>"),
    ("chatml", "drop"): (f"{A}<|im_end|>",) * 2,
    ("llama3", "train"): (f"{INLINE_TARGET}<|eot_id|>", f"{A}<|eot_id|>"),
}


def _tok(deepseek_tok, template):
    tok = copy.deepcopy(deepseek_tok)
    tok.chat_template = named_template(template)
    return tok


def _supervised(tok, sample) -> str:
    return tok.decode([t for t in sample.targets if t != IGNORE])


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_reads_into_one_form(shape):
    messages = normalise(SHAPES[shape], "auto", reasoning_field="think")
    assert messages[-1] == {"role": "assistant", "content": A, "reasoning": R}


@pytest.fixture(scope="module")
def tokenizers(deepseek_tok):
    return {name: _tok(deepseek_tok, name) for name in {t for t, _ in EXPECTED}}


@pytest.mark.parametrize("template, mode", EXPECTED)
@pytest.mark.parametrize("shape", ["inline, tight (the reported bug)", "reasoning_content field", "alpaca column"])
def test_the_supervised_text_is_exactly_the_templates_shape(tokenizers, template, mode, shape):
    tok = tokenizers[template]
    renderer = Renderer(tok, 1024, reasoning=mode)
    with_reasoning, without = EXPECTED[template, mode]
    [sample] = renderer.conversation(normalise(SHAPES[shape], "auto", reasoning_field="think"))
    assert _supervised(tok, sample) == with_reasoning
    [plain] = renderer.conversation(normalise({"instruction": Q, "output": A}, "auto"))
    assert _supervised(tok, plain) == without
    if mode == "mask":   # the reasoning stays in the context the answer is learned from
        assert R in tok.decode(sample.input_ids)


def test_the_data_report_counts_reasoning_and_answer_tokens(tokenizers):
    tok = tokenizers["deepseek-r1"]
    renderer = Renderer(tok, 1024)
    renderer.conversation(normalise(SHAPES["reasoning_content field"], "auto"))
    renderer.conversation(normalise({"instruction": Q, "output": A}, "auto"))   # an empty block is not reasoning
    thought = f"{R}\n</think>\n\n"
    assert renderer.stats.reasoning_tokens == len(tok(thought, add_special_tokens=False)["input_ids"])
    answer = len(tok(A + "<｜end▁of▁sentence｜>", add_special_tokens=False)["input_ids"])
    assert renderer.stats.answer_tokens == 2 * answer


def test_multi_turn_reasoning_is_learned_in_its_turn_and_never_seen_in_later_history(tokenizers):
    conv = normalise({"messages": [
        {"role": "user", "content": Q}, {"role": "assistant", "content": A, "reasoning_content": R},
        {"role": "user", "content": "那解除呢？"},
        {"role": "assistant", "content": "<think>看第三十七条。</think>提前三十日书面通知。"}]}, "auto")
    for template in ("deepseek-r1", "qwen3", "chatml"):
        tok = tokenizers[template]
        first, second = Renderer(tok, 1024).conversation(conv)
        assert R in _supervised(tok, first) and "看第三十七条。" in _supervised(tok, second)
        assert R not in tok.decode(second.input_ids)            # not even as context of the next turn
        assert tok.decode(second.input_ids).count("<think>") <= 1 + (template == "deepseek-r1")


@pytest.mark.parametrize("content, error", [
    ("<think>reasoning never closed", "unclosed <think>"),
    ("<think>a</think><think>b</think>answer", "two think blocks"),
    ("reasoning</think>answer", "</think> without <think>"),
    ("</think>x<think>", "comes before"),
    ("Sure. <think>r</think>answer", "text before <think>"),
])
def test_malformed_traces_are_file_line_errors_or_counted_skips(tmp_path, content, error):
    path = tmp_path / "r1.jsonl"
    good = {"messages": [{"role": "user", "content": Q}, {"role": "assistant", "content": A}]}
    bad = {"messages": [{"role": "user", "content": Q}, {"role": "assistant", "content": content}]}
    path.write_text(json.dumps(good, ensure_ascii=False) + "\n" + json.dumps(bad, ensure_ascii=False) + "\n")
    with pytest.raises(DataError, match=f"r1.jsonl:2: .*{error}"):
        read_file(path)
    report = ReadReport()
    assert len(read_file(path, on_error="skip", report=report)) == 1 and sum(report.skipped.values()) == 1


def test_reasoning_both_inline_and_in_a_field_is_two_blocks():
    record = {"messages": [{"role": "user", "content": Q},
                           {"role": "assistant", "content": f"<think>{R}</think>{A}", "reasoning_content": R}]}
    with pytest.raises(ValueError, match="both inline"):
        normalise(record, "auto")


@pytest.mark.parametrize("text, opened, parsed", [
    (f"{R}\n</think>\n\n{A}", True, (R, A, True)),
    (f"<think>\n{R}\n</think>\n\n{A}", False, (R, A, True)),
    (f"{R} and on and on", True, (f"{R} and on and on", "", False)),
    (A, False, (None, A, True)),
    (f"\n</think>\n\n{A}", True, (None, A, True)),
])
def test_generated_answers_parse_into_reasoning_and_answer(text, opened, parsed):
    assert parse_generated(text, opened) == parsed
    assert split_inline(A) == (None, A)


def _check(tok, conv, renderer=None, mode="train") -> TemplateReport:
    report = TemplateReport()
    check_prefixes(tok, [("f.jsonl:1", conv)], report, mode)
    check_reasoning(tok, [("f.jsonl:1", conv)], report, mode, renderer)
    return report


@pytest.mark.parametrize("template", ["deepseek-r1", "deepseek-v3", "qwen3", "chatml"])
@pytest.mark.parametrize("mode", ["train", "mask", "drop"])
def test_check_template_passes_what_is_rendered_right(tokenizers, deepseek_tok, template, mode):
    tok = tokenizers.get(template) or _tok(deepseek_tok, template)
    conv = normalise({"messages": [{"role": "user", "content": Q},
                                   {"role": "assistant", "content": A, "reasoning_content": R},
                                   {"role": "user", "content": "还有呢？"}, {"role": "assistant", "content": "没有了。"}]},
                     "auto")
    report = _check(tok, conv, mode=mode)
    assert report.reasoning_checked == 2 and report.reasoning_problems == [] and report.prefix_mismatches == []


def test_check_template_catches_a_doubled_think_block(tokenizers):
    # a pipeline that added a reasoning field but left the inline block in the content
    conv = [{"role": "user", "content": Q}, {"role": "assistant", "content": f"<think>{R}</think>{A}",
                                             "reasoning": "再想一想。"}]
    report = _check(tokenizers["deepseek-r1"], conv)
    assert any("doubled or nested think block" in p for p in report.reasoning_problems)


def test_check_template_catches_a_template_that_loses_the_reasoning(deepseek_tok):
    tok = copy.deepcopy(deepseek_tok)   # writes its own empty block before every answer, whatever the reasoning
    tok.chat_template = ("{% for m in messages %}{% if m.role == 'user' %}<U>{{ m.content }}{% else %}<A><think>\n\n"
                         "</think>\n\n{{ m.content }}<E>{% endif %}{% endfor %}{% if add_generation_prompt %}<A>"
                         "{% endif %}")
    conv = [{"role": "user", "content": Q}, {"role": "assistant", "content": A, "reasoning": R}]
    problems = _check(tok, conv).reasoning_problems
    assert any("own rendering" in p for p in problems) and any("parses back" in p for p in problems)


def test_check_template_catches_reasoning_leaking_into_history(tokenizers, monkeypatch):
    import seektune.data.render as render

    tok = tokenizers["chatml"]   # renders history verbatim: only the renderer keeps reasoning out of it
    conv = [{"role": "user", "content": Q}, {"role": "assistant", "content": f"<think>{R}</think>{A}"},
            {"role": "user", "content": "还有呢？"}, {"role": "assistant", "content": "没有了。"}]
    assert _check(tok, conv).reasoning_problems == []
    # the regression this guards against: history built from the raw messages, reasoning and all
    monkeypatch.setattr(render, "history_messages", lambda ms: [{"role": m["role"], "content": m["content"]}
                                                                  for m in ms])
    problems = _check(tok, conv).reasoning_problems
    assert any("reasoning of turn 1 is in this turn's prompt" in p for p in problems)


def test_conversion_and_data_steps_keep_and_see_the_reasoning():
    from seektune.data.pipeline.convert import convert
    from seektune.data.pipeline.fields import map_texts, texts

    record = {"messages": [{"role": "user", "content": Q}, {"role": "assistant", "content": f"<think>{R}</think>{A}"}]}
    for target in ("alpaca", "sharegpt", "openai"):
        assert normalise(convert(record, target), "auto") == normalise(record, "auto"), target
    separate = convert(record, "openai")
    assert R in texts(separate)   # dedup, statistics and leakage read the reasoning too
    masked = map_texts(separate, lambda text: text.replace("十九", "##"))   # privacy masks it too
    assert "##" in masked["messages"][1]["reasoning_content"]
    column = {"instruction": Q, "output": A, "reasoning": R}
    assert R in texts(column) and "##" in map_texts(column, lambda t: t.replace("十九", "##"))["reasoning"]
