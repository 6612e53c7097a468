"""`seektune check-template`: marked supervision, train/inference prefix equality, and the stop check."""

import json

import pytest

from seektune.cli import main
from tests.conftest import write_config

pytestmark = pytest.mark.slow


def _multi_turn(tmp_path):
    path = tmp_path / "chat.jsonl"
    rows = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Which days?"},
                          {"role": "assistant", "content": "Tuesdays."}, {"role": "user", "content": "How long?"},
                          {"role": "assistant", "content": "Ten hours."}]}] * 3
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_passes_without_a_model_and_marks_only_answers(tmp_path, tiny_llama_dir, capsys):
    cfg = write_config(tmp_path, tiny_llama_dir, _multi_turn(tmp_path))
    assert main(["check-template", str(cfg)]) == 0
    out = capsys.readouterr().out.split("\u27e7):\n", 1)[1]  # after the header line
    assert "\u27e6Tuesdays.<|im_end|>\u27e7" in out and "\u27e6Ten hours.<|im_end|>\u27e7" in out
    assert out.count("\u27e6") == 2  # only the two answers (with their end-of-turn) are supervised
    assert "6/6 assistant turns" in out and "stopping: skipped" in out


def test_bad_records_are_skipped_as_training_skips_them(tmp_path, tiny_llama_dir, capsys):
    path = _multi_turn(tmp_path)
    path.write_text("{not json\n" + path.read_text())
    cfg = write_config(tmp_path, tiny_llama_dir, path)
    assert main(["check-template", str(cfg)]) == 2
    assert "chat.jsonl:1" in capsys.readouterr().err   # on_error: raise names the bad line
    assert main(["check-template", str(cfg), "data.on_error=skip"]) == 0
    assert "\u27e6Tuesdays.<|im_end|>\u27e7" in capsys.readouterr().out


def test_deepseek_r1_multi_turn_prefixes_match(tmp_path, capsys):
    from seektune.evaluate.template_check import TemplateReport, check_prefixes
    from seektune.models.registry import deepseek_tokenizer
    from seektune.models.templates import named_template

    tok = deepseek_tokenizer()
    tok.chat_template = named_template("deepseek-r1")
    conv = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "<think>\nr1\n</think>\n\na1"},
            {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]
    report = TemplateReport()
    check_prefixes(tok, [("x:1", conv)], report)
    assert report.prefix_checked == 2 and report.prefix_mismatches == []


def test_a_prefix_mismatch_is_reported(tmp_path, tiny_tokenizer, monkeypatch):
    from seektune.evaluate import template_check

    real = template_check.chat_prompt_ids
    monkeypatch.setattr(template_check, "chat_prompt_ids",
                        lambda tok, messages: real(tok, messages)[:, :-1])  # inference drops the last token
    report = template_check.TemplateReport()
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]
    template_check.check_prefixes(tiny_tokenizer, [("f:1", conv)], report)
    assert len(report.prefix_mismatches) == 1 and "f:1 turn 1" in report.prefix_mismatches[0]


def test_an_untrained_model_that_does_not_stop_fails(tmp_path, tiny_llama_dir, capsys):
    cfg = write_config(tmp_path, tiny_llama_dir, _multi_turn(tmp_path))
    assert main(["check-template", str(cfg), "--model", str(tiny_llama_dir), "--records", "2",
                 "--max-new-tokens", "4"]) == 2
    out = capsys.readouterr()
    assert "ends its answer with the end-of-turn token: 0/2" in out.out and "NO STOP" in out.out
    assert "template check failed" in out.err


def test_the_reported_inline_think_record_is_trained_once_and_checked(tmp_path, capsys):
    """The issue's reproduction: reasoning inline without a newline after <think>, deepseek-r1 template on
    tiny-deepseek-v3. The target used to be an empty block followed by a second one, and the check passed."""
    path = tmp_path / "r1.jsonl"
    record = {"messages": [{"role": "user", "content": "试用期最长多久？"},
                           {"role": "assistant", "content": "<think>劳动合同法第十九条规定试用期上限。</think>最长不超过六个月。"}]}
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n")
    cfg = write_config(tmp_path, "tiny-deepseek-v3", path, model={"name_or_path": "tiny-deepseek-v3",
                                                                  "chat_template": "deepseek-r1"})
    assert main(["check-template", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "<think>\n\u27e6劳动合同法第十九条规定试用期上限。\n</think>\n\n最长不超过六个月。<｜end▁of▁sentence｜>\u27e7" in out
    assert out.count("<think>") == 1 and "not in later prompts: 1/1 turns" in out
