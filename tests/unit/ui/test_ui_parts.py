"""The web UI's parts without a browser: the train form becomes the config `seektune train` validates (help text
from the schema, files only inside the project folder), and run states are read back from disk."""

import json
import os
import subprocess
import sys

import pytest

from seektune.config import TrainConfig
from seektune.errors import ConfigError
from seektune.ui import forms
from seektune.ui.jobs import Jobs


def _values(**changes):
    values = {"model.name_or_path": "smollm2-135m-instruct", "method.name": "lora", "data.train": "train.jsonl",
              "train.max_steps": 6, "train.learning_rate": 5e-3, "train.micro_batch_size": 2,
              "data.max_length": 64, "method.lora.r": 4, "output.name": "clinic"}
    return {**values, **changes}


def test_the_form_is_the_training_config(tmp_path):
    (tmp_path / "train.jsonl").write_text("{}\n")
    tree = forms.config_tree(tmp_path, _values())
    cfg = forms.check(tree)
    assert cfg.data.train[0].path == str(tmp_path / "train.jsonl") and cfg.method.lora.r == 4
    assert cfg.output.dir == str(tmp_path / "runs") and cfg.train.max_steps == 6
    path, written = forms.write(tree, tmp_path)
    assert written == cfg
    assert forms.command_line(path) == f"seektune train {path}"
    help_of = {f.key: f.help for f in forms.FIELDS}
    assert help_of["train.max_steps"] == TrainConfig.model_fields["max_steps"].description


def test_the_form_refuses_bad_values_and_files_outside_the_project(tmp_path):
    with pytest.raises(ConfigError, match="max_steps"):
        forms.check(forms.config_tree(tmp_path, _values(**{"train.max_steps": -1})))
    with pytest.raises(ConfigError, match="outside"):
        forms.config_tree(tmp_path, _values(**{"data.train": "../secrets.jsonl"}))
    with pytest.raises(ConfigError, match="outside"):
        forms.config_tree(tmp_path, _values(**{"model.name_or_path": "/etc"}))


def _job(jobs: Jobs, name: str, pid: int, run_dir) -> None:
    jobs.folder.mkdir(parents=True, exist_ok=True)
    (jobs.folder / f"{name}.json").write_text(json.dumps({
        "name": name, "run_dir": str(run_dir), "config": "c.yaml", "pid": pid, "command": [], "log": "x.log",
        "started": 1.0 + len(list(jobs.folder.iterdir()))}))


def test_run_states_come_from_the_run_directory(tmp_path):
    jobs = Jobs(tmp_path)
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    finished, stopped, failed = (tmp_path / "runs" / n for n in ("finished", "stopped", "failed"))
    (finished / "final").mkdir(parents=True)
    (finished / "result.json").write_text("{}")
    (finished / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    (stopped / "checkpoints" / "step-2").mkdir(parents=True)
    failed.mkdir(parents=True)
    for name, run in (("finished", finished), ("stopped", stopped), ("failed", failed)):
        _job(jobs, name, done.pid, run)
    _job(jobs, "running", os.getpid(), tmp_path / "runs" / "running")
    states = {s.name: (s.state, s.step, s.loss) for s in jobs.statuses()}
    assert states == {"finished": ("finished", 2, 1.5), "stopped": ("stopped (resumable)", 0, None),
                      "failed": ("failed", 0, None), "running": ("running", 0, None)}
    assert jobs.run_dir("stopped") == stopped and jobs.run_dir("never-started") is None
    with pytest.raises(ConfigError, match="already training"):
        jobs.start("running", tmp_path / "c.yaml", tmp_path / "runs" / "running")


def test_the_evaluate_tab_writes_an_eval_config_inside_the_project(tmp_path):
    from seektune.evaluate.eval_config import load as load_eval
    from seektune.ui import evaluation

    (tmp_path / "heldout.jsonl").write_text("{}\n")
    tree = evaluation.eval_tree(tmp_path, {"base": "smollm2-135m-instruct", "tuned": str(tmp_path / "runs/x")},
                                "heldout.jsonl", "generation", 5, 32, "first")
    cfg = load_eval(evaluation.write(tree, tmp_path, "first"))
    assert [m.name for m in cfg.models] == ["base", "tuned"] and cfg.tasks[0].limit == 5
    assert cfg.output_dir == str(tmp_path / ".seektune-ui" / "evals" / "first")
    with pytest.raises(ConfigError, match="at least one model"):
        evaluation.eval_tree(tmp_path, {}, "heldout.jsonl", "generation", 0, 32, "x")
    with pytest.raises(ConfigError, match="letters, digits"):
        evaluation.eval_tree(tmp_path, {"base": "b"}, "heldout.jsonl", "generation", 0, 32, "../x")
    with pytest.raises(ConfigError, match="outside"):
        evaluation.eval_tree(tmp_path, {"base": "b"}, "/etc/passwd", "generation", 0, 32, "x")
