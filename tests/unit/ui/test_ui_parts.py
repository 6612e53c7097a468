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
    values = {f.key: f.shown_default() for f in forms.FIELDS}
    values.update({"data.train": "train.jsonl", "train.max_steps": 6, "train.learning_rate": 5e-3,
                   "train.micro_batch_size": 2, "data.max_length": 64, "method.lora.r": 4, "output.name": "clinic"})
    return {**values, **changes}


def test_the_form_is_the_training_config(tmp_path):
    (tmp_path / "train.jsonl").write_text("{}\n")
    tree, problems = forms.config_tree(tmp_path, _values())
    cfg = forms.check(tree)
    assert not problems and cfg.data.train[0].path == str(tmp_path / "train.jsonl") and cfg.method.lora.r == 4
    assert cfg.output.dir == str(tmp_path / "runs") and cfg.train.max_steps == 6
    assert tree["train"] == {"max_steps": 6, "learning_rate": 5e-3, "micro_batch_size": 2}   # defaults left out
    path, written = forms.write(tree, tmp_path)
    assert written == cfg
    assert forms.command_line(path) == f"seektune train {path}"


def test_every_key_of_the_schema_is_a_field_with_its_help(tmp_path):
    from seektune.config import Config
    from seektune.schema import describe

    keys = {line.split(" = ")[0].strip() for line in describe(Config) if " = " in line}
    files = {k for k in keys if k.startswith(("data.train.", "data.eval."))}   # path, format, domain, weight
    assert keys - files | {"data.train", "data.eval"} == {f.key for f in forms.FIELDS}
    assert forms.BY_KEY["train.max_steps"].help == TrainConfig.model_fields["max_steps"].description
    kinds = {k: forms.BY_KEY[k].kind for k in ("train.gradient_checkpointing", "method.lora.r", "train.lr_scheduler",
                                               "method.lora.target_modules", "continual.ewc", "model.dropout")}
    assert kinds == {"train.gradient_checkpointing": "bool", "method.lora.r": "int", "train.lr_scheduler": "choice",
                     "method.lora.target_modules": "yaml", "continual.ewc": "section", "model.dropout": "float"}


def test_a_config_goes_into_the_form_and_back_unchanged(tmp_path):
    (tmp_path / "train.jsonl").write_text("{}\n")
    tree, _ = forms.config_tree(tmp_path, _values(**{
        "method.lora.target_modules": "[q_proj, v_proj]", "train.lr_scheduler": "linear", "data.packing": False,
        "method.qat.bits": "4", "continual.l2sp": True, "continual.l2sp.weight": 0.5, "continual.replay.ratio": 0.3,
        "data.system_prompt": "Answer briefly.", "data.eval": "{path: train.jsonl, domain: clinic}"}))
    assert tree["method"]["lora"]["target_modules"] == ["q_proj", "v_proj"] and tree["method"]["qat"]["bits"] == 4
    hub, _ = forms.config_tree(tmp_path, _values(**{"model.name_or_path": "Qwen/Qwen2.5-0.5B"}))
    assert hub["model"]["name_or_path"] == "Qwen/Qwen2.5-0.5B"   # a hub id (HF cache), not a project folder
    assert tree["data"]["eval"] == [{"path": str(tmp_path / "train.jsonl"), "domain": "clinic"}]
    assert tree["continual"] == {"l2sp": {"weight": 0.5}}   # replay is switched off: its keys are not written
    again, _ = forms.config_tree(tmp_path, forms.form_values(tree))
    assert again == tree


def test_each_problem_is_given_to_the_field_it_names(tmp_path):
    (tmp_path / "train.jsonl").write_text("{}\n")

    def errors(**changes):
        tree, problems = forms.config_tree(tmp_path, _values(**changes))
        return {**forms.field_errors(tree)[1], **problems}

    assert set(errors(**{"train.max_steps": -1})) == {"train.max_steps"}
    assert "greater than or equal to 0" in errors(**{"train.max_steps": -1})["train.max_steps"]
    assert set(errors(**{"data.train": ""})) == {"data.train"}   # a model-level check names its key
    assert set(errors(**{"method.lora.target_modules": "[q_proj"})) == {"method.lora.target_modules"}
    assert set(errors(**{"continual.ewc": True})) == {"continual.ewc"}   # EWC needs earlier runs
    assert errors(**{"train.head_learning_rate": "fast"}) == {"train.head_learning_rate": "'fast' is not a number"}
    assert errors(**{"train.head_learning_rate": "1e-4"}) == {} and errors() == {}


def test_the_form_refuses_bad_values_and_files_outside_the_project(tmp_path):
    with pytest.raises(ConfigError, match="max_steps"):
        forms.check(forms.config_tree(tmp_path, _values(**{"train.max_steps": -1}))[0])
    for key, value in (("data.train", "../secrets.jsonl"), ("model.name_or_path", "/etc"),
                       ("train.term_file", "/etc/passwd"), ("output.dir", "/tmp"),
                       ("data.eval", "{path: ../x.jsonl, domain: d}"), ("output.name", "../../../etc/x"),
                       ("output.dir", ".seektune-ui/keys"), ("continual.previous", "[/tmp/runs/a]"),
                       ("continual.replay.data", "[../runs/a]"), ("objective.rewards", "[key_fact, model:/tmp/rm]")):
        problem = forms.config_tree(tmp_path, _values(**{key: value}))[1][key]
        assert "outside" in problem or "letters, digits" in problem or "UI's own state" in problem


def test_a_runs_uploads_go_to_its_own_folder(tmp_path):
    from seektune.ui.datasteps import save_upload
    from seektune.ui.project import Project

    project = Project(tmp_path)
    upload = tmp_path / "clinic.jsonl"
    upload.write_text('{"instruction": "q", "output": "a"}\n')
    saved = save_upload(project, upload, run="../clinic")
    assert saved == project.state("uploads", "runs", "clinic", "clinic.jsonl")
    assert saved.read_text() == upload.read_text()


def _job(jobs: Jobs, name: str, pid: int, run_dir, command: list[str] = ()) -> None:
    jobs.folder.mkdir(parents=True, exist_ok=True)
    (jobs.folder / f"{name}.json").write_text(json.dumps({
        "name": name, "run_dir": str(run_dir), "config": "c.yaml", "pid": pid, "command": list(command),
        "log": str(run_dir.parents[1] / "x.log"),
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
    this_process = open("/proc/self/cmdline", "rb").read().decode().split("\0")[:-1]
    _job(jobs, "running", os.getpid(), tmp_path / "runs" / "running", this_process)
    _job(jobs, "pid-reused", os.getpid(), tmp_path / "runs" / "pid-reused", ["python", "-m", "seektune.cli"])
    states = {s.name: (s.state, s.step, s.loss) for s in jobs.statuses()}
    assert states == {"finished": ("finished", 2, 1.5), "stopped": ("stopped (resumable)", 0, None),
                      "failed": ("failed", 0, None), "running": ("running", 0, None),
                      "pid-reused": ("failed", 0, None)}
    assert not jobs.stop("pid-reused")   # a process that is not ours never gets the signal
    (tmp_path / "x.log").write_text("train tokens: 10\ntrain:   0%| 0/4\rtrain:  50%| 2/4\rtrain: 100%| 4/4\n"
                                    "saved final/\n")
    assert jobs.log_tail("finished") == "train tokens: 10\ntrain: 100%| 4/4\nsaved final/"
    assert jobs.run_dir("stopped") == stopped and jobs.run_dir("never-started") is None
    assert jobs.run_dir("../jobs/stopped") is None   # a name is never a path
    with pytest.raises(ConfigError, match="already training"):
        jobs.start("running", tmp_path / "c.yaml", tmp_path / "runs" / "running")


def test_the_evaluate_tab_writes_an_eval_config_inside_the_project(tmp_path):
    from seektune.evaluate.eval_config import load as load_eval
    from seektune.ui import evaluation

    (tmp_path / "heldout.jsonl").write_text("{}\n")
    tree = evaluation.eval_tree(tmp_path, {"base": "smollm2-135m-instruct", "tuned": str(tmp_path / "runs/x")},
                                "heldout.jsonl", "generation", 5, 32, "first", "Answer in one sentence.")
    cfg = load_eval(evaluation.write(tree, tmp_path, "first"))
    assert [m.name for m in cfg.models] == ["base", "tuned"] and cfg.tasks[0].limit == 5
    assert cfg.tasks[0].system_prompt == "Answer in one sentence."
    assert cfg.output_dir == str(tmp_path / ".seektune-ui" / "evals" / "first")
    (tmp_path / "general.jsonl").write_text("{}\n")
    tree = evaluation.eval_tree(tmp_path, {"base": "b", "tuned": "t"}, "heldout.jsonl\nsub/heldout.jsonl",
                                "generation", 0, 32, "two", general="general.jsonl")
    assert [(t["name"], t.get("general", False)) for t in tree["tasks"]] == [
        ("heldout", False), ("heldout-1", False), ("general", True)]   # one task per file, names kept apart
    with pytest.raises(ConfigError, match="evaluation data file"):
        evaluation.eval_tree(tmp_path, {"base": "b"}, "", "generation", 0, 32, "x", general="general.jsonl")
    with pytest.raises(ConfigError, match="at least one model"):
        evaluation.eval_tree(tmp_path, {}, "heldout.jsonl", "generation", 0, 32, "x")
    with pytest.raises(ConfigError, match="letters, digits"):
        evaluation.eval_tree(tmp_path, {"base": "b"}, "heldout.jsonl", "generation", 0, 32, "../x")
    with pytest.raises(ConfigError, match="outside"):
        evaluation.eval_tree(tmp_path, {"base": "b"}, "/etc/passwd", "generation", 0, 32, "x")


def test_an_example_config_loads_into_the_form(tmp_path):
    import shutil
    from pathlib import Path

    from seektune import config
    from seektune.ui.project import Project
    from seektune.ui.tabs.train_tab import loaded_values

    shutil.copytree(Path(__file__).parents[3] / "examples" / "clinic", tmp_path / "clinic")
    values = loaded_values(Project(tmp_path), "clinic/lora.yaml")
    assert values["data.train"] == "clinic/train.jsonl" and values["train.epochs"] == 12
    tree, problems = forms.config_tree(tmp_path, values)
    from_form, from_file = forms.check(tree), config.load(tmp_path / "clinic" / "lora.yaml")
    assert not problems and from_form.model_dump(exclude={"output"}) == from_file.model_dump(exclude={"output"})
    assert from_form.output.name == "clinic-lora" and from_form.output.dir == str(tmp_path / "runs")


def test_the_latest_step_is_read_from_the_end_of_a_long_metrics_file(tmp_path):
    from seektune.ui.jobs import TAIL_BYTES, last_row, metrics

    steps = [json.dumps({"step": i, "loss": 1 / i, "lr": 1e-3, "note": "x" * 200}) for i in range(1, 400)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(steps) + '\n{"step": 400, "lo')
    assert (tmp_path / "metrics.jsonl").stat().st_size > TAIL_BYTES
    assert last_row(tmp_path) == metrics(tmp_path)[-1] and last_row(tmp_path)["step"] == 399
    evals = [json.dumps({"step": 399, "eval_loss": 0.5, "note": "y" * 200})] * (TAIL_BYTES // 200 + 10)
    (tmp_path / "metrics.jsonl").write_text("\n".join(steps + evals) + "\n")   # only eval rows in the tail
    assert last_row(tmp_path)["step"] == 399 and last_row(tmp_path / "none") is None
