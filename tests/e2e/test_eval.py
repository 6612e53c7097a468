"""`seektune eval` end to end on tiny models: every task type, robustness, efficiency, forgetting, the
scorecard, lm-evaluation-harness on a local task, the report files, and resuming a killed evaluation."""

import json

import pytest
import yaml

from seektune.cli import main
from tests.conftest import QA, write_config

pytestmark = pytest.mark.slow


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def eval_setup(tmp_path, tiny_llama_dir, alpaca_file):
    cfg = write_config(tmp_path / "train", tiny_llama_dir, alpaca_file, train={"max_steps": 4})
    assert main(["train", str(cfg)]) == 0
    qa = _jsonl(tmp_path / "qa.jsonl", [{"question": q, "reference": a, "key_fact": a.split()[-1]} for q, a in QA[:4]])
    triage = _jsonl(tmp_path / "triage.jsonl", [{"question": f"case {i}: chest pain", "label": lab}
                                                for i, lab in enumerate(["urgent", "routine", "urgent"])])
    law = _jsonl(tmp_path / "law.jsonl", [{"instruction": "哪一条？", "output": "《中华人民共和国劳动合同法》第三十九条。"}])
    general = _jsonl(tmp_path / "general.jsonl", [{"instruction": q, "output": a} for q, a in QA[4:7]])
    mc = _jsonl(tmp_path / "mc.jsonl", [{"question": "2+2=", "choices": ["4", "5"], "answer": 0},
                                        {"question": "Capital of France:", "choices": ["Rome", "Paris"], "answer": 1}])
    tasks_dir = tmp_path / "lm_tasks"
    tasks_dir.mkdir()
    (tasks_dir / "tiny_mc.yaml").write_text(yaml.safe_dump({
        "task": "tiny_mc", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(mc)}},
        "test_split": "test", "output_type": "multiple_choice", "doc_to_text": "{{question}}",
        "doc_to_choice": "{{choices}}", "doc_to_target": "{{answer}}", "metric_list": [{"metric": "acc"}]}))
    spec = {
        "models": [{"name": "base", "path": str(tiny_llama_dir)}, {"name": "tuned", "path": str(tmp_path / "train/runs/run")}],
        "tasks": [{"name": "qa", "data": str(qa)},
                  {"name": "triage", "type": "classification", "data": str(triage), "labels": ["urgent", "routine"],
                   "high_risk": "urgent"},
                  {"name": "law", "type": "citation", "data": str(law)},
                  {"name": "general", "data": str(general), "general": True},
                  {"name": "ppl", "type": "perplexity", "data": str(general), "general": True}],
        "generation": {"max_new_tokens": 6, "batch_size": 2},
        "efficiency": {"prompts": 1, "max_new_tokens": 4},
        "harness": {"tasks": ["tiny_mc"], "include_path": str(tasks_dir)},
        "continual": {"sequences": {"qa-then-general": [{"model": "base", "task": "qa"},
                                                        {"model": "tuned", "task": "general"}]}},
        "output_dir": str(tmp_path / "eval"),
    }
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, tmp_path / "eval"


def test_eval_writes_a_complete_report_and_resumes(eval_setup, monkeypatch):
    config, out = eval_setup
    from seektune.evaluate import runner as runner_module

    real, calls = runner_module.generate_answers, []

    def crash_on_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # what a user's Ctrl-C or a kill looks like to the loop
        return real(*args, **kwargs)

    monkeypatch.setattr(runner_module, "generate_answers", crash_on_third_batch)
    assert main(["eval", str(config)]) == 130
    done_before = len((out / "predictions.jsonl").read_text().splitlines())
    assert done_before == 4  # two batches of two were written before the interruption

    calls.clear()
    monkeypatch.setattr(runner_module, "generate_answers", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    assert main(["eval", str(config)]) == 0
    rows = (out / "predictions.jsonl").read_text().splitlines()
    per_model = 2 * (4 + 3 + 1 + 3)  # clean + typo for qa, triage, law, general
    assert len(rows) == 2 * per_model and len({(json.loads(r)["model"], json.loads(r)["task"], json.loads(r)["variant"],
                                                json.loads(r)["index"]) for r in rows}) == len(rows)
    batches_per_model = 2 * (2 + 2 + 1 + 2)  # ceil(n / batch 2) for qa, triage, law, general; clean + typo
    assert len(calls) == 2 * batches_per_model - 2  # only the two finished batches were not redone

    report = json.loads((out / "report.json").read_text())
    assert set(report["tasks"]) == {"qa", "triage", "law", "general", "ppl"}
    assert report["tasks"]["qa"]["primary"] == "key_fact"
    tri = report["tasks"]["triage"]["models"]["tuned"]["clean"]
    assert {"accuracy", "kappa", "high_risk_recall", "macro_f1", "unparsed"} <= set(tri)
    assert report["tasks"]["law"]["primary"] == "citation_exact"
    assert report["tasks"]["ppl"]["models"]["base"]["clean"]["perplexity"] > 1
    assert set(report["forgetting"]["tuned"]) == {"general", "ppl"}
    assert report["efficiency"]["base"]["tokens_per_s"] > 0
    assert report["benchmarks"]["base"]["tiny_mc/acc"] in (0.0, 0.5, 1.0)
    card = report["scorecard"]["models"]
    assert set(card["tuned"]["dimensions"]) == {"quality", "robustness", "efficiency", "retention"}
    assert card["base"]["dimensions"]["retention"] == 1.0
    md = (out / "report.md").read_text()
    for heading in ("## Scorecard", "## Task qa", "## Efficiency", "## Forgetting", "## Standard benchmarks",
                    "## Metric definitions"):
        assert heading in md
    assert (out / "charts/qa__f1.png").is_file() and (out / "charts/forgetting.png").is_file()
    # the continual view: every task's primary score after each stage, from the same predictions
    seq = report["continual"]["qa-then-general"]
    scores = {t: {m: report["tasks"][t]["models"][m]["clean"][report["tasks"][t]["primary"]] for m in ("base", "tuned")}
              for t in ("qa", "general")}
    assert seq["matrix"] == [[scores["qa"]["base"], scores["general"]["base"]],
                             [scores["qa"]["tuned"], scores["general"]["tuned"]]]
    assert seq["bwt"] == pytest.approx(scores["qa"]["tuned"] - scores["qa"]["base"])
    assert "## Continual learning" in md and (out / "charts/continual__qa-then-general.png").is_file()
