import math

import pytest

from seektune.metrics.citation import citation_scores
from seektune.evaluate.classification import UNPARSED, LabelRule, classification_scores, cohen_kappa
from seektune.evaluate.perturb import add_typos
from seektune.metrics.text import answer_tokens, bleu, exact_match, normalize_answer, rouge, token_f1


def test_squad_normalisation_exact_match_and_f1():
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert exact_match("the cat sat.", "Cat sat") == 1.0
    # pred tokens: [cat, sat, on, mat]; ref: [cat, sat, down]: common 2 -> P 2/4, R 2/3, F1 = 4/7
    assert token_f1("a cat sat on the mat", "the cat sat down") == pytest.approx(4 / 7)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0


def test_chinese_is_scored_per_character():
    assert answer_tokens("第39条，ok Go") == ["第", "39", "条", "ok", "go"]
    # pred 劳动合同法 (5 chars) vs ref 劳动法 (3): common 劳 动 法 = 3 -> P 3/5, R 1 -> F1 = 0.75
    assert token_f1("劳动合同法", "劳动法") == pytest.approx(0.75)
    assert exact_match("《劳动法》。", "劳动法") == 1.0


def test_bleu_matches_sacrebleu_definition():
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    # 4-gram precisions 5/5,3/4,... hand check via brevity: identical prefix, shorter hypothesis
    value = bleu(["the cat sat on the"], ["the cat sat on the mat"])
    assert value == pytest.approx(100 * math.exp(1 - 6 / 5), rel=1e-6)
    assert bleu(["劳动合同法第三十九条"], ["劳动合同法第三十九条"]) == pytest.approx(100.0)  # zh tokeniser


def test_rouge_english_stemmed_and_chinese_characters():
    r = rouge("the cats are running", "the cat runs")
    # Porter stems cats->cat, running/runs->run: 3 of 4 predicted, 3 of 3 reference unigrams match
    assert r["rouge1"] == pytest.approx(2 * (3 / 4) * 1.0 / (3 / 4 + 1.0))
    zh = rouge("劳动合同法", "劳动法")
    assert zh["rouge1"] == pytest.approx(0.75) and zh["rougeL"] == pytest.approx(0.75)
    assert zh["rouge2"] == pytest.approx(2 * (1 / 4) * (1 / 2) / (1 / 4 + 1 / 2))  # 劳动 only


def test_cohen_kappa_hand_computed():
    # 10 items: agreement 7/10; predicted yes 5 / no 5, reference yes 6 / no 4 -> p_e = (5*6 + 5*4)/100 = 0.5
    pred = ["y", "y", "y", "y", "n", "n", "n", "n", "n", "y"]
    ref = ["y", "y", "y", "n", "n", "n", "n", "y", "y", "y"]
    assert cohen_kappa(pred, ref) == pytest.approx((0.7 - 0.5) / 0.5)
    assert cohen_kappa(["a", "a"], ["a", "a"]) == 1.0


def test_classification_report_and_high_risk_recall():
    pred = ["high", "low", "low", "high", UNPARSED]
    ref = ["high", "high", "low", "low", "high"]
    s = classification_scores(pred, ref, ["high", "low"], high_risk="high")
    assert s["accuracy"] == pytest.approx(2 / 5)
    assert s["high_risk_recall"] == pytest.approx(1 / 3)
    assert s["per_class"]["high"]["precision"] == pytest.approx(1 / 2)
    assert s["per_class"]["low"]["f1"] == pytest.approx(2 * 0.5 * 0.5 / 1.0)
    assert s["unparsed"] == 1


def test_label_rule_first_mention_regex_and_aliases():
    rule = LabelRule(["urgent", "routine"], aliases={"紧急": "urgent"})
    assert rule.extract("This is routine, not urgent") == "routine"
    assert rule.extract("属于紧急情况") == "urgent"
    assert rule.extract("no idea") == UNPARSED
    assert LabelRule(["A", "B"], pattern=r"answer:\s*(\w)").extract("I think... Answer: B") == "B"


def test_citation_accuracy_on_tricky_strings():
    ref = "依据《中华人民共和国劳动合同法》第三十九条。"
    assert citation_scores("根据《劳动合同法》第39条，可以解除。", ref) == {"citation_exact": 1.0, "citation_law": 1.0}
    assert citation_scores("见《劳动合同法》第四十条", ref) == {"citation_exact": 0.0, "citation_law": 1.0}
    assert citation_scores("见《劳动法》第三十九条", ref) == {"citation_exact": 0.0, "citation_law": 0.0}
    assert citation_scores("《刑法》第一百二十条之一", "《中华人民共和国刑法》第一百二十条之一") == {
        "citation_exact": 1.0, "citation_law": 1.0}
    assert citation_scores("《刑法》第一百二十条", "《刑法》第一百二十条之一")["citation_exact"] == 0.0
    assert citation_scores("anything", "no citation here") is None


def test_typos_are_seeded_and_bounded():
    text = "Which weekdays are flu jabs offered at the clinic?"
    a, b = add_typos(text, 0.1, 3), add_typos(text, 0.1, 3)
    assert a == b != text and abs(len(a) - len(text)) <= 5
    assert add_typos("心电图检查需要空腹吗", 0.2, 1) != "心电图检查需要空腹吗"
    assert add_typos("1234", 0.5, 0) == "1234"


def test_eval_config_is_strict_and_names_the_key(tmp_path):
    from seektune.errors import ConfigError
    from seektune.evaluate import eval_config

    path = tmp_path / "e.yaml"
    path.write_text("models: [{name: a, path: x}]\ntasks: [{name: t, data: d.jsonl, lables: [x]}]\n")
    with pytest.raises(ConfigError, match="lables"):
        eval_config.load(path)
    path.write_text("models: [{name: a, path: x}]\ntasks: [{name: t, data: d.jsonl}, {name: t, data: d.jsonl}]\n")
    with pytest.raises(ConfigError, match="distinct"):
        eval_config.load(path)
    path.write_text("models: [{name: a, path: x}]\ntasks: [{name: t, type: classification, data: d.jsonl}]\n")
    with pytest.raises(ConfigError, match="needs labels"):
        eval_config.load(path)


def test_citation_credit_stops_at_three_distinct_articles():
    ref = "《中华人民共和国劳动合同法》第三十八条"
    two = "《劳动合同法》第三十六条、第三十八条"
    listed = "《劳动合同法》第三十三条、第三十四条、第三十五条、第三十六条、第三十七条、第三十八条"
    assert citation_scores(two, ref)["citation_exact"] == 1.0
    assert citation_scores(listed, ref) == {"citation_exact": 0.0, "citation_law": 1.0}
    assert citation_scores("第三十八条……《劳动合同法》第三十八条又说", ref)["citation_exact"] == 1.0   # repeats count once


def test_rouge_of_an_empty_answer_is_a_float_zero():
    # rouge-score returns int 0 for no overlap; the aggregate keeps only floats, so the metric vanished from reports
    assert all(type(v) is float and v == 0.0 for v in rouge("", "劳动者可以解除劳动合同").values())


def test_typos_leave_image_placeholders_whole():
    text = "<image>\nWhat colour is the square in this image?<image>"
    noisy = add_typos(text, 0.5, 7)
    assert noisy != text and noisy.count("<image>") == 2 and noisy.startswith("<image>\n")
