import json
from collections import Counter

from seektune.cli import main
from seektune.data.citations import citations


def _jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def _read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


LONG_Q = ("A patient with type 2 diabetes reports blurred vision, frequent thirst and numbness in both feet; "
          "their last HbA1c was 9.1 percent and they take metformin twice a day. What should the nurse do first?")


def test_leakage_finds_copies_near_copies_augmented_items_and_shared_articles(tmp_path):
    test = _jsonl(tmp_path / "test.jsonl", [
        {"id": "t1", "instruction": LONG_Q, "output": "Check blood glucose."},
        {"id": "t2", "instruction": "劳动者严重违反规章制度，用人单位能否解除合同？", "output": "可以，见《劳动合同法》第三十九条。"}])
    train = _jsonl(tmp_path / "train.jsonl", [
        {"instruction": LONG_Q, "output": "Check blood glucose."},                               # exact copy
        {"instruction": LONG_Q.replace("first", "at once"), "output": "Call the doctor."},        # near question
        {"instruction": "Paraphrased beyond recognition", "output": "x", "metadata": {"source_id": "t1"}},
        {"instruction": "试用期被证明不符合录用条件怎么办？", "output": "依据《中华人民共和国劳动合同法》第39条可以解除。"},
        {"instruction": "What is an ECG?", "output": "A heart tracing."}])                       # clean
    out = tmp_path / "train.clean.jsonl"
    assert main(["data", "leakage", str(train), "--test", str(test), "-o", str(out)]) == 0
    leaks = [r["leak"] for r in _read(tmp_path / "train.clean.jsonl.leaks.jsonl")]
    assert leaks[0] == "exact duplicate of a test item" and leaks[1].startswith("near duplicate of a test")
    assert leaks[2:] == ["augmented or copied test item (provenance)", "shares entities with the test set"]
    # entity overlap is reported but only removed on request
    assert [r["instruction"] for r in _read(out)] == ["试用期被证明不符合录用条件怎么办？", "What is an ECG?"]
    assert main(["data", "leakage", str(train), "--test", str(test), "-o", str(out), "--remove-entity-overlap"]) == 0
    assert [r["instruction"] for r in _read(out)] == ["What is an ECG?"]


def test_inspect_reports_languages_duplicates_and_jieba_words(tmp_path, tiny_llama_dir):
    data = _jsonl(tmp_path / "d.jsonl", [{"text": "我们 喜欢 心电图"}, {"text": "我们 喜欢 心电图"},
                                         {"instruction": "hello there", "output": "general kenobi"},
                                         {"instruction": "", "output": "x", "extra": 1}])
    assert main(["data", "inspect", str(data), "--out-dir", str(tmp_path / "i"), "--tokenizer",
                 str(tiny_llama_dir)]) == 0
    s = json.loads((tmp_path / "i" / "inspect.json").read_text())
    assert s["records"] == 4 and s["exact_duplicates"] == 1 and s["duplicate_rate"] == 0.25
    assert s["languages"] == {"zh": 2, "en": 2} and s["formats"] == {"text": 2, "alpaca": 2}
    assert s["missing_fields"] == {"instruction": 2, "output": 2, "extra": 3, "text": 2}
    assert s["zh_words_per_record"] == 3.0 and s["zh_vocabulary"] == 3  # jieba: 我们 / 喜欢 / 心电图
    assert s["tokens"]["max"] > 0 and (tmp_path / "i" / "token_lengths.png").stat().st_size > 1000
    assert "| tokens (" in (tmp_path / "i" / "inspect.md").read_text()


def test_balance_caps_the_majority_class(tmp_path):
    rows = [{"text": f"p{i}", "label": "pos"} for i in range(10)] + [{"text": f"n{i}", "label": "neg"} for i in range(50)]
    data = _jsonl(tmp_path / "c.jsonl", rows)
    out = tmp_path / "b.jsonl"
    assert main(["data", "balance", str(data), "-o", str(out), "--max-ratio", "3", "--seed", "1"]) == 0
    assert Counter(r["label"] for r in _read(out)) == {"pos": 10, "neg": 30}


def test_legal_dataset_splits_by_article_and_cites_correctly(tmp_path):
    assert main(["data", "legal", "--out-dir", str(tmp_path), "--max-articles", "200", "--seed", "0"]) == 0
    train, test = _read(tmp_path / "train.jsonl"), _read(tmp_path / "test.jsonl")
    assert len(train) == 360 and len(test) == 40
    key = lambda r: (r["metadata"]["law_id"], r["metadata"]["article_no"])  # noqa: E731
    assert not {key(r) for r in train} & {key(r) for r in test}
    for r in train[:50]:
        cited = citations(r["output"])[0]
        assert cited.law and cited.article and r["output"].startswith(r["metadata"]["citation"])
    assert Counter(r["metadata"]["task"] for r in test) == {"cite": 20, "content": 20}
    manifest = json.loads((tmp_path / "test.jsonl.manifest.json").read_text())["steps"][-1]
    assert manifest["inputs"][0]["path"].endswith("laws.db") and manifest["articles"] == {"train": 180, "test": 20, "known": 0}


def test_leakage_reads_evaluation_examples_as_the_test_side(tmp_path):
    test = _jsonl(tmp_path / "known.jsonl", [{"question": LONG_Q, "reference": "Check blood glucose.", "key_fact": "x"}])
    train = _jsonl(tmp_path / "train.jsonl", [{"instruction": LONG_Q, "output": "Check blood glucose."},
                                              {"instruction": "What is an ECG?", "output": "A heart tracing."}])
    out = tmp_path / "clean.jsonl"
    assert main(["data", "leakage", str(train), "--test", str(test), "-o", str(out)]) == 0
    assert [r["instruction"] for r in _read(out)] == ["What is an ECG?"]
    bad = _jsonl(tmp_path / "bad.jsonl", [{"question": 3, "reference": "r"}])
    assert main(["data", "leakage", str(train), "--test", str(bad), "-o", str(out)]) == 2


def test_legal_focus_on_laws_keeps_known_articles_in_train(tmp_path, capsys):
    known = _jsonl(tmp_path / "known.jsonl", [
        {"question": "试用期发现不符合录用条件怎么办？", "reference": "根据《中华人民共和国劳动合同法》第三十九条，可以解除。"},
        {"question": "违约要担什么责任？", "reference": "依照民法典第五百七十七条承担违约责任。"}])
    args = ["data", "legal", "--out-dir", str(tmp_path / "out"), "--laws", "劳动合同法", "民法典:577-580",
            "--known", str(known), "--test-tasks", "cite", "--train-tasks", "cite", "ask", "--test-fraction", "0.3",
            "--seed", "3"]
    assert main(args) == 0
    train, test = _read(tmp_path / "out" / "train.jsonl"), _read(tmp_path / "out" / "test.jsonl")
    laws = {r["metadata"]["law"] for r in train + test}
    assert laws == {"中华人民共和国劳动合同法", "中华人民共和国民法典"}
    civil = {r["metadata"]["article_no"] for r in train + test if r["metadata"]["law"].endswith("民法典")}
    assert civil <= {"第五百七十七条", "第五百七十八条", "第五百七十九条", "第五百八十条"}
    trained = {(r["metadata"]["law"], r["metadata"]["article_no"]) for r in train}
    assert {("中华人民共和国劳动合同法", "第三十九条"), ("中华人民共和国民法典", "第五百七十七条")} <= trained
    assert {r["metadata"]["task"] for r in test} == {"cite"} and len(test) > 10
    assert Counter(r["metadata"]["task"] for r in train) == {"cite": len(trained), "ask": len(trained)}
    ask = next(r for r in train if r["metadata"]["task"] == "ask" and r["metadata"]["article_no"] == "第三十九条"
               and r["metadata"]["law"].endswith("劳动合同法"))
    assert "在试用期间被证明不符合录用条件" in ask["instruction"]      # the first listed case, not "有下列情形之一"
    assert ask["output"].startswith("根据《中华人民共和国劳动合同法》第三十九条，劳动者有下列情形之一的")
    manifest = json.loads((tmp_path / "out" / "test.jsonl.manifest.json").read_text())["steps"][-1]
    assert manifest["articles"]["known"] == 2
    capsys.readouterr()
    _jsonl(known, [{"question": "q", "reference": "《中华人民共和国刑法》第一条"}])
    assert main(args) == 2
    assert "known.jsonl:1: 《刑法》第1条 is not among the selected articles" in capsys.readouterr().err
    assert main([*args[:6], "劳动合同发"]) == 2
    assert "--laws 劳动合同发: no current article" in capsys.readouterr().err
