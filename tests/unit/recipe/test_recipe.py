"""The recipe file and its runner's bookkeeping: variables, typed files, which stages run again."""

import json
from pathlib import Path

import pytest
import yaml

from seektune.errors import ConfigError
from seektune.recipe.config import Recipe, argv, load, parse_assignments
from seektune.recipe.runner import RecipeRun, timing_table

RECIPE = {
    "work": "out/${name}",
    "vars": {"name": "demo", "steps": 0, "laws": "甲法 乙法:1-3", "check": "true"},
    "files": {"train.yaml": {"train": {"max_steps": "${steps}", "note": "steps=${steps}"},
                             "data": {"train": "${work}/data.jsonl"}}},
    "stages": [
        {"name": "data", "run": "data legal --laws ${laws} --out-dir ${work}/data", "outputs": ["${work}/data.jsonl"]},
        {"name": "train", "run": "train ${work}/train.yaml --resume", "outputs": ["${work}/final"]},
        {"name": "eval", "run": "eval ${work}/eval.yaml"},
        {"name": "ask", "ask": {"model": "${work}/final", "prompt": "q", "expect_citation": "${check}", "out": "a.json"}},
    ],
}


def _recipe(tmp_path: Path, **overrides) -> Recipe:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(RECIPE, allow_unicode=True), encoding="utf-8")
    return load(path, overrides)


def test_variables_are_replaced_and_keep_their_type_when_alone(tmp_path):
    recipe = _recipe(tmp_path, steps="7")
    work = str((tmp_path / "out" / "demo").resolve())
    assert recipe.work == work
    assert argv(recipe.stages[0]) == ["data", "legal", "--laws", "甲法", "乙法:1-3", "--out-dir", f"{work}/data"]
    train = recipe.files["train.yaml"]
    assert train["train"] == {"max_steps": 7, "note": "steps=7"} and train["data"]["train"] == f"{work}/data.jsonl"
    assert _recipe(tmp_path, work=str(tmp_path / "elsewhere")).work == str(tmp_path / "elsewhere")
    assert recipe.stages[3].ask.expect_citation is True and _recipe(tmp_path, check="false").stages[3].ask.expect_citation is False
    with pytest.raises(ConfigError, match="expect_citation"):
        _recipe(tmp_path, check="maybe")


def test_bad_recipes_say_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown recipe variable\(s\) \['stpes'\]"):
        _recipe(tmp_path, stpes="1")
    with pytest.raises(ConfigError, match="name=value"):
        parse_assignments(["steps"])
    bad = {**RECIPE, "stages": [{"name": "x", "run": "train ${nope}"}]}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"stages\[0\].run: \$\{nope\} is not a variable"):
        load(tmp_path / "bad.yaml")
    both = {**RECIPE, "stages": [{"name": "x", "run": "eval e.yaml", "ask": {"model": "m", "prompt": "p", "out": "o"}}]}
    (tmp_path / "both.yaml").write_text(yaml.safe_dump(both))
    with pytest.raises(ConfigError, match="exactly one of run or ask"):
        load(tmp_path / "both.yaml")
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({**RECIPE, "stage": []}))
    with pytest.raises(ConfigError, match="stage"):
        load(tmp_path / "typo.yaml")


class _Recorder(RecipeRun):
    """Runs nothing: records the stage and makes its outputs, so the bookkeeping is tested alone."""

    def __init__(self, *args):
        super().__init__(*args)
        self.ran: list[str] = []

    def _run_stage(self, stage):
        self.ran.append(stage.name)
        for out in stage.outputs:
            Path(out).mkdir(parents=True, exist_ok=True) if out.endswith("final") else \
                Path(out).parent.mkdir(parents=True, exist_ok=True) or Path(out).write_text("x")


def test_finished_stages_are_skipped_and_a_rerun_stage_redoes_what_follows(tmp_path):
    recipe = _recipe(tmp_path)
    first = _Recorder(recipe)
    first.run()
    assert first.ran == ["data", "train", "eval", "ask"]
    again = _Recorder(recipe)
    again.run()
    assert again.ran == []                                  # all done: nothing runs
    Path(recipe.work, "final").rmdir()                      # an output is gone: that stage and the rest run
    third = _Recorder(recipe)
    third.run()
    assert third.ran == ["train", "eval", "ask"]
    changed = _Recorder(_recipe(tmp_path, steps="3"))   # the train config changed
    changed.run()
    assert changed.ran == ["train", "eval", "ask"]
    redo = _Recorder(_recipe(tmp_path, steps="3"))
    redo.run(start="eval")
    assert redo.ran == ["eval", "ask"]
    only = _Recorder(_recipe(tmp_path, steps="3"))
    only.run(start="data", only=["data"])
    assert only.ran == ["data"]
    timings = json.loads((Path(recipe.work) / "recipe" / "timings.json").read_text())
    assert set(timings) == {"data", "train", "eval", "ask"}
    assert "| **total** |" in timing_table(recipe, Path(recipe.work))


def test_a_failed_stage_leaves_no_marker(tmp_path):
    recipe = _recipe(tmp_path)

    class Failing(_Recorder):
        def _run_stage(self, stage):
            if stage.name == "train":
                raise RuntimeError("boom")
            super()._run_stage(stage)

    with pytest.raises(RuntimeError):
        Failing(recipe).run()
    state = Path(recipe.work) / "recipe" / "state"
    assert sorted(p.name for p in state.iterdir()) == ["data.json"]
    resumed = _Recorder(recipe)
    resumed.run()
    assert resumed.ran == ["train", "eval", "ask"]
