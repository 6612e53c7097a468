"""The continual-learning matrix and its summaries against hand-computed values (three tasks, three stages)."""

import pytest

from seektune.evaluate import continual, report
from seektune.evaluate.eval_config import ContinualEvalConfig, EvalConfig

# R[i][j]: rows = after stage i (A, B, C), columns = tasks a, b, c; plus the base model
SCORES = {"base": [0.1, 0.2, 0.0], "A": [0.9, 0.3, 0.1], "B": [0.6, 0.8, 0.2], "C": [0.5, 0.7, 0.9]}


def _tasks():
    return {t: {"primary": "key_fact", "models": {m: {"clean": {"key_fact": s[j], "f1": 1.0}} for m, s in SCORES.items()}}
            for j, t in enumerate("abc")}


def _cfg():
    return ContinualEvalConfig(base="base", sequences={"abc": [{"model": "A", "task": "a"}, {"model": "B", "task": "b"},
                                                               {"model": "C", "task": "c"}]})


def test_matrix_forgetting_and_transfer_by_hand():
    r = continual.collect(_tasks(), _cfg())["abc"]
    assert r["matrix"] == [SCORES["A"], SCORES["B"], SCORES["C"]]
    assert r["average_accuracy"] == pytest.approx((0.5 + 0.7 + 0.9) / 3)
    # a: best 0.9 (after A) - 0.5 = 0.4; b: best 0.8 (after B) - 0.7 = 0.1
    assert r["forgetting"] == {"a": pytest.approx(0.4), "b": pytest.approx(0.1)}
    assert r["average_forgetting"] == pytest.approx(0.25)
    assert r["bwt"] == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)
    # b before learning it (after A) 0.3 vs base 0.2; c before (after B) 0.2 vs base 0.0
    assert r["fwt"] == pytest.approx(((0.3 - 0.2) + (0.2 - 0.0)) / 2)


def test_report_has_the_table_and_a_heatmap(tmp_path):
    result = continual.collect(_tasks(), _cfg())
    lines = "\n".join(continual.markdown(result))
    assert "| abc | primary | 0.700 | 0.250 | -0.250 | 0.150 |" in lines
    assert "| B (learnt b) | 0.600 | 0.800 | 0.200 |" in lines and "| base (before) | 0.100 | 0.200 | 0.000 |" in lines
    assert continual.heatmaps(result, tmp_path) == ["charts/continual__abc.png"]
    assert (tmp_path / "charts/continual__abc.png").stat().st_size > 1000
    assert "continual:" in report.DEFINITIONS


def test_sequences_name_known_models_and_tasks():
    base = {"models": [{"name": "A", "path": "x"}, {"name": "B", "path": "y"}],
            "tasks": [{"name": "a", "data": "a.jsonl"}, {"name": "b", "data": "b.jsonl"}]}
    with pytest.raises(ValueError, match=r"continual.sequences.s\[1\].model: 'Z'"):
        EvalConfig(**base, continual={"sequences": {"s": [{"model": "A", "task": "a"}, {"model": "Z", "task": "b"}]}})
    with pytest.raises(ValueError, match=r"continual.sequences.s\[0\].task: 'q'"):
        EvalConfig(**base, continual={"sequences": {"s": [{"model": "A", "task": "q"}, {"model": "B", "task": "b"}]}})
