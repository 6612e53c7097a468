import json
import random
from collections import Counter

import pytest

from seektune.cli import main
from seektune.data.pipeline.augment import shuffle_sentences, split_sentences, swap_synonyms
from seektune.data.pipeline.convert import TripleTemplate, convert
from seektune.data.pipeline.mix import exact_counts, largest_total
from seektune.train.domain_sampling import DomainWeights
from seektune.data.pipeline.synthesize import parse_pairs, passages


def _jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def _read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


ALPACA = {"id": "q1", "instruction": "What is an ECG?", "input": "", "output": "A 心电图 records the heart.",
          "metadata": {"source": "x"}}


def test_convert_round_trips_between_formats():
    multi = {"system": "s", "instruction": "q2", "output": "a2", "history": [["q1", "a1"]], "id": 7}
    share = convert(multi, "sharegpt")
    assert [t["from"] for t in share["conversations"]] == ["system", "human", "gpt", "human", "gpt"]
    openai = convert(share, "openai")
    assert convert(openai, "alpaca") == {**{k: multi[k] for k in ("system", "instruction", "output", "history")},
                                         "input": "", "id": 7}
    assert convert(ALPACA, "text") == {"text": "What is an ECG?", "label": "A 心电图 records the heart.", "id": "q1",
                                       "metadata": {"source": "x"}}
    with pytest.raises(ValueError, match="template"):
        convert({"text": "plain"}, "alpaca")


def test_triple_template_builds_instructions_and_names_missing_fields():
    t = TripleTemplate({"instruction": "判断情感：", "input": "{text}", "output": "{label}"})
    assert t.build({"text": "很好", "label": "正面"}) == {"instruction": "判断情感：", "input": "很好", "output": "正面",
                                                           "label": "正面"}
    with pytest.raises(ValueError, match="'label'"):
        t.build({"text": "很好"})


def test_exact_mix_counts():
    assert exact_counts([0.6, 0.3, 0.1], 1000) == [600, 300, 100]
    assert exact_counts([1, 1, 1], 10) == [4, 3, 3]
    assert sum(exact_counts([0.55, 0.35, 0.1], 997)) == 997
    assert largest_total([0.6, 0.3, 0.1], [600, 1000, 1000]) == 1000


def test_mix_cli_exact_proportions_seeded_and_tagged(tmp_path):
    srcs = {name: _jsonl(tmp_path / f"{name}.jsonl", [{"text": f"{name} {i}"} for i in range(n)])
            for name, n in (("general", 90), ("domain", 50), ("recent", 20))}
    out1, out2 = tmp_path / "m1.jsonl", tmp_path / "m2.jsonl"
    args = [f"general={srcs['general']}:0.6", f"domain={srcs['domain']}:0.3", f"recent={srcs['recent']}:0.1"]
    assert main(["data", "mix", *args, "-o", str(out1), "--seed", "3"]) == 0
    assert main(["data", "mix", *args, "-o", str(out2), "--seed", "3"]) == 0
    rows = _read(out1)
    assert Counter(r["metadata"]["domain"] for r in rows) == {"general": 90, "domain": 45, "recent": 15}
    assert len({r["text"] for r in rows}) == 150  # no repeats when no source is too small
    assert out1.read_bytes() == out2.read_bytes()
    assert [r["metadata"]["domain"] for r in rows[:20]] != sorted(r["metadata"]["domain"] for r in rows[:20])


def test_domain_weights_favour_the_domain_whose_loss_falls_slowest():
    w = DomainWeights({"general": 1, "legal": 1}, step_size=2.0, smoothing=0.0)
    w.update({"general": 2.0, "legal": 3.0})      # first evaluation: the reference
    after = w.update({"general": 1.0, "legal": 2.7})
    assert after["legal"] > 0.5 > after["general"] and abs(sum(after.values()) - 1) < 1e-9
    with pytest.raises(ValueError, match="legal"):
        DomainWeights({"general": 1, "legal": 1}).update({"general": 1.0})


def test_synonym_swap_and_sentence_shuffle_keep_content():
    rng = random.Random(0)
    text, changes = swap_synonyms("心电图显示正常，ECG无异常。", [["心电图", "ECG"]], rng)
    assert text == "ECG显示正常，心电图无异常。" and changes == ["心电图->ECG", "ECG->心电图"]
    assert split_sentences("第一句。第二句！Third one. Fourth?") == ["第一句。", "第二句！", "Third one.", "Fourth?"]
    shuffled = shuffle_sentences("A one. B two. C three. D four.", random.Random(1))
    assert shuffled != "A one. B two. C three. D four."
    assert sorted(split_sentences(shuffled)) == ["A one.", "B two.", "C three.", "D four."]


def test_augment_cli_records_provenance(tmp_path, fake_endpoint):
    base_url, server = fake_endpoint
    server.reply = lambda prompt: "PARAPHRASE" if "back" in prompt else "TRANSLATED"
    src = _jsonl(tmp_path / "in.jsonl", [ALPACA, {"text": "No terms here. Second sentence. Third one."}])
    syn = tmp_path / "syn.txt"
    syn.write_text("# medical\n心电图 ↔ ECG\n", encoding="utf-8")
    out = tmp_path / "aug.jsonl"
    assert main(["data", "augment", str(src), "-o", str(out), "--synonyms", str(syn), "--shuffle-sentences",
                 "--endpoint", base_url, "--model", "m"]) == 0
    rows = _read(out)
    ops = [(r.get("metadata") or {}).get("operation") for r in rows]
    assert ops == [None, "synonym", "back_translation:English", None, "sentence_order", "back_translation:English"]
    swapped = rows[1]
    assert swapped["instruction"] == "What is an 心电图?" and swapped["output"] == "A ECG records the heart."
    assert swapped["metadata"]["source_id"] == "q1" and "id" not in swapped
    assert rows[2]["instruction"] == "PARAPHRASE" and rows[2]["output"] == ALPACA["output"]
    manifest = json.loads((tmp_path / "aug.jsonl.manifest.json").read_text())["steps"][-1]
    assert manifest["deterministic"] is False and manifest["endpoint"]["base_url"] == base_url


def test_synthesize_cli_dedups_and_keeps_the_passage(tmp_path, fake_endpoint):
    base_url, server = fake_endpoint
    pairs = [{"instruction": "What must patients do before a blood draw?", "output": "Fast for ten hours."},
             {"instruction": "What must patients do before a blood draw?", "output": "Fast."},
             {"instruction": "When are flu shots given?", "output": "Tuesdays."}, {"bad": 1}]
    server.reply = lambda prompt: "Here you go:\n```json\n" + json.dumps(pairs) + "\n```"
    doc = tmp_path / "policy.md"
    doc.write_text("Patients must fast for ten hours before a blood draw.\n\nFlu shots are given on Tuesdays.")
    existing = _jsonl(tmp_path / "have.jsonl", [{"instruction": "When are flu shots given?", "output": "Tue"}])
    out = tmp_path / "syn.jsonl"
    assert main(["data", "synthesize", str(doc), "-o", str(out), "--endpoint", base_url, "--per-passage", "2",
                 "--existing", str(existing), "--domain", "clinic"]) == 0
    rows = _read(out)
    assert [r["instruction"] for r in rows] == ["What must patients do before a blood draw?"]
    assert rows[0]["metadata"]["passage"].startswith("Patients must fast")
    prompt = server.requests[0]["body"]["messages"][0]["content"]
    assert "2 diverse question/answer pairs" in prompt and "clinic" in prompt


def test_parse_pairs_and_passages():
    assert parse_pairs("no json") == []
    assert parse_pairs('[{"instruction": "q", "output": "a"}]') == [{"instruction": "q", "input": "", "output": "a"}]
    chunks = passages("a" * 10 + "\n" + "b" * 10 + "\n" + "c" * 10, max_chars=22)
    assert chunks == ["a" * 10 + "\n" + "b" * 10, "c" * 10]
