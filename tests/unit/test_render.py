"""Masks are exact: only each answer and its end-of-turn token are supervised, for several real templates."""

import pytest

from seektune.data.render import IGNORE, Renderer, end_of_turn_ids
from seektune.errors import DataError
from seektune.models.templates import named_template


def supervised_text(tokenizer, sample) -> list[str]:
    """Decode each contiguous run of supervised target tokens."""
    runs, current = [], []
    for t in sample.targets:
        if t == IGNORE:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(t)
    if current:
        runs.append(current)
    return [tokenizer.decode(r) for r in runs]


CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Which days?"},
    {"role": "assistant", "content": "Tuesdays and Thursdays."},
    {"role": "user", "content": "How long?"},
    {"role": "assistant", "content": "Ten hours."},
]


def test_chatml_all_assistant_turns_with_end_token(tiny_tokenizer):
    [sample] = Renderer(tiny_tokenizer, 512).conversation(CONV)
    assert supervised_text(tiny_tokenizer, sample) == ["Tuesdays and Thursdays.<|im_end|>", "Ten hours.<|im_end|>"]
    # targets are shifted labels: position t predicts token t+1
    full = tiny_tokenizer.apply_chat_template(CONV, tokenize=False)
    assert tiny_tokenizer.decode(sample.input_ids) == full


def test_last_assistant_only(tiny_tokenizer):
    [sample] = Renderer(tiny_tokenizer, 512, train_on="last_assistant").conversation(CONV)
    assert supervised_text(tiny_tokenizer, sample) == ["Ten hours.<|im_end|>"]


@pytest.mark.parametrize("template", ["chatml", "deepseek-r1", "deepseek-v3", "llama3", "qwen2.5"])
def test_training_prefix_is_token_for_token_the_inference_prompt(deepseek_tok, template):
    import copy

    tok = copy.deepcopy(deepseek_tok)
    tok.chat_template = named_template(template)
    conv = [{"role": "user", "content": "Which days?"}, {"role": "assistant", "content": "Tuesdays."}]
    [sample] = Renderer(tok, 512).conversation(conv)
    first = next(i for i, t in enumerate(sample.targets) if t != IGNORE)
    prompt = tok.apply_chat_template(conv[:1], tokenize=False, add_generation_prompt=True)
    assert sample.input_ids[: first + 1] == tok(prompt, add_special_tokens=False)["input_ids"]


MULTI = [*CONV, {"role": "user", "content": "Where is it?"}, {"role": "assistant", "content": "Room 4."}]


@pytest.mark.parametrize("template", ["chatml", "deepseek-r1", "deepseek-v3", "llama3", "qwen2.5"])
def test_the_serving_prompt_is_token_for_token_the_training_prefix_of_every_turn(deepseek_tok, template):
    """What `seektune serve` / chat / eval feed (Renderer.prompt_ids) for a conversation so far is exactly the
    start of the training sample that supervises the next answer, multi-turn and for history-rewriting templates."""
    import copy

    tok = copy.deepcopy(deepseek_tok)
    tok.chat_template = named_template(template)
    renderer = Renderer(tok, 1024)
    checked = 0
    for i, message in enumerate(MULTI):
        if message["role"] != "assistant":
            continue
        sample = renderer.conversation(MULTI[: i + 1])[-1]
        prompt = renderer.prompt_ids(MULTI[:i])
        assert sample.input_ids[: len(prompt)] == prompt
        assert sample.targets[len(prompt) - 2] == IGNORE          # the prompt's own last token is not taught
        assert sample.targets[len(prompt) - 1] != IGNORE          # the very next token is the answer's first
        checked += 1
    assert checked == 3


def test_deepseek_v3_template(deepseek_tok):
    """The official V3 template opens answers with <think> and drops reasoning from history, like R1."""
    renderer = Renderer(deepseek_tok, 512)
    first, second = renderer.conversation(CONV)
    assert renderer.stats.split_for_template == 1
    assert supervised_text(deepseek_tok, first) == ["\n</think>\n\nTuesdays and Thursdays.<｜end▁of▁sentence｜>"]
    assert supervised_text(deepseek_tok, second) == ["\n</think>\n\nTen hours.<｜end▁of▁sentence｜>"]
    assert deepseek_tok.decode(first.input_ids).startswith("<｜begin▁of▁sentence｜>Be brief.<｜User｜>Which days?")
    assert deepseek_tok.eos_token_id in end_of_turn_ids(deepseek_tok)


@pytest.fixture()
def r1_tok(deepseek_tok):
    import copy

    tok = copy.deepcopy(deepseek_tok)
    tok.chat_template = named_template("deepseek-r1")
    return tok


def test_r1_multi_turn_splits_per_turn_and_keeps_reasoning_only_in_its_own_target(r1_tok):
    conv = [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n4"},
        {"role": "user", "content": "and 3+3?"},
        {"role": "assistant", "content": "<think>\nagain\n</think>\n\n6"},
    ]
    renderer = Renderer(r1_tok, 512)
    first, second = renderer.conversation(conv)
    assert renderer.stats.split_for_template == 1
    assert supervised_text(r1_tok, first) == ["add them\n</think>\n\n4<｜end▁of▁sentence｜>"]
    assert supervised_text(r1_tok, second) == ["again\n</think>\n\n6<｜end▁of▁sentence｜>"]
    # the history of turn 2 is what inference sees: the first answer without its reasoning (chat and the server
    # keep only the answer in the history, as DeepSeek's API asks clients to)
    history = r1_tok.decode(second.input_ids)
    assert "add them" not in history and "<｜Assistant｜>4<｜end▁of▁sentence｜>" in history
    assert history.endswith("<｜Assistant｜><think>\nagain\n</think>\n\n6<｜end▁of▁sentence｜>")


def test_r1_answer_without_reasoning_gets_an_empty_think_block(r1_tok):
    [sample] = Renderer(r1_tok, 512).conversation([{"role": "user", "content": "hi"},
                                                   {"role": "assistant", "content": "hello"}])
    assert supervised_text(r1_tok, sample) == ["\n</think>\n\nhello<｜end▁of▁sentence｜>"]


def test_overlength_modes(tiny_tokenizer):
    long = [{"role": "user", "content": "q " * 10}, {"role": "assistant", "content": "Ten hours. " * 40}]
    truncate = Renderer(tiny_tokenizer, 40)
    [s] = truncate.conversation(long)
    assert len(s.input_ids) == 40 and truncate.stats.truncated == 1
    drop = Renderer(tiny_tokenizer, 40, overlength="drop")
    assert drop.conversation(long) == [] and drop.stats.dropped_overlength == 1
    with pytest.raises(DataError, match="max_length=40"):
        Renderer(tiny_tokenizer, 40, overlength="error").conversation(long, "f.jsonl:7")


def test_text_is_fully_supervised_in_windows(tiny_tokenizer):
    samples = Renderer(tiny_tokenizer, 16).text("the quick brown fox jumps over the lazy dog " * 4)
    assert len(samples) > 1 and all(len(s.input_ids) <= 16 for s in samples)
    s = samples[0]
    assert s.targets[:-1] == s.input_ids[1:] and s.targets[-1] == IGNORE


def test_tokenizer_without_template_is_a_clear_error(tiny_tokenizer):
    import copy

    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = None
    with pytest.raises(DataError, match="model.chat_template"):
        Renderer(tok, 64)
