import json

import pytest

from seektune.data.formats import ReadReport, normalise, read_file
from seektune.errors import DataError


def test_alpaca_with_input_system_and_history():
    rec = {"instruction": "Summarise", "input": "text here", "output": "short", "system": "be brief",
           "history": [["hi", "hello"]]}
    assert normalise(rec, "auto") == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}, {"role": "user", "content": "Summarise\n\ntext here"},
        {"role": "assistant", "content": "short"}]


@pytest.mark.parametrize("turns", [
    [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
    [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
])
def test_sharegpt_both_spellings(turns):
    assert normalise({"conversations": turns}, "auto") == [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def test_openai_messages_with_system_and_default_system_prompt():
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    out = normalise({"messages": msgs}, "auto", system_prompt="sys")
    assert out[0] == {"role": "system", "content": "sys"}
    kept = normalise({"messages": [{"role": "system", "content": "own"}, *msgs]}, "auto", system_prompt="sys")
    assert kept[0]["content"] == "own"


def test_plain_text():
    assert normalise({"text": "raw corpus"}, "auto") == "raw corpus"


@pytest.mark.parametrize("record, reason", [
    ({"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "q2"}]}, "expected 'assistant'"),
    ({"messages": [{"role": "bot", "content": "q"}]}, "role must be"),
    ({"conversations": [{"from": "robot", "value": "x"}]}, "unknown role 'robot'"),
    ({"instruction": "q"}, "unknown record format"),
    ({"instruction": "q", "output": 3}, "output must be a string"),
    ({"messages": [{"role": "user", "content": "q"}]}, "no assistant turn"),
])
def test_bad_records_give_a_reason(record, reason):
    with pytest.raises(ValueError, match=reason):
        normalise(record, "auto")


def _jsonl(tmp_path, lines):
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


GOOD = json.dumps({"instruction": "q", "output": "a"})


def test_malformed_line_names_file_and_line(tmp_path):
    p = _jsonl(tmp_path, [GOOD, GOOD, '{"instruction": "q", "output": ', GOOD])
    with pytest.raises(DataError, match=rf"{p}:3: invalid JSON"):
        read_file(p)


def test_missing_field_names_file_and_line(tmp_path):
    p = _jsonl(tmp_path, [GOOD, json.dumps({"conversations": [{"from": "human"}]})])
    with pytest.raises(DataError, match=rf"{p}:2: .*must be a string"):
        read_file(p)


def test_skip_mode_counts_every_bad_record(tmp_path):
    p = _jsonl(tmp_path, [GOOD, "not json", GOOD, json.dumps({"messages": [{"role": "x", "content": "y"}]})])
    report = ReadReport()
    records = read_file(p, on_error="skip", report=report)
    assert len(records) == 2 and report.read == 2
    assert sum(report.skipped.values()) == 2
    assert records[1].where == f"{p}:3"


def test_truncated_json_array_keeps_complete_records_and_reports_the_tail(tmp_path):
    p = tmp_path / "arr.json"
    p.write_text('[\n {"text": "one"},\n {"text": "two"},\n {"text": "thr', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{p}:4: invalid JSON .*truncated"):
        read_file(p)
    report = ReadReport()
    records = read_file(p, on_error="skip", report=report)
    assert [r.content for r in records] == ["one", "two"]
    assert [r.where for r in records] == [f"{p}:2", f"{p}:3"]
    assert sum(report.skipped.values()) == 1


def test_utf8_bom_is_accepted_and_gbk_is_explained(tmp_path):
    p = tmp_path / "bom.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + GOOD.encode() + b"\n")
    assert len(read_file(p)) == 1
    g = tmp_path / "gbk.jsonl"
    g.write_bytes(GOOD.encode() + b"\n" + json.dumps({"text": "法律"}, ensure_ascii=False).encode("gbk") + b"\n")
    with pytest.raises(DataError, match=rf"{g}:2: not valid UTF-8.*GBK"):
        read_file(g)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_file(tmp_path / "nope.jsonl")
