"""Run a recipe's stages in order, each as its own `seektune` process (so one stage's memory is gone before the
next starts, and a crash loses only that stage), with its output streamed to the terminal and to a log.

A finished stage leaves a marker in <work>/recipe/state/ holding its command; running the recipe again skips
every stage whose marker matches and whose outputs exist, so an interrupted road resumes at the stage it was
in (a train stage given `--resume` then continues from its newest checkpoint). Once a stage runs, every stage
after it runs too: its inputs may have changed, and stages name no dependencies. Timings go to
<work>/recipe/timings.json and the end of the run prints them as a table.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from seektune.atomic import write_text
from seektune.errors import SeektuneError
from seektune.recipe.config import Recipe, Stage, argv


class StageFailed(SeektuneError):
    pass


@dataclass
class StageResult:
    name: str
    status: str       # done | skipped
    seconds: float


def _fingerprint(stage: Stage, files: dict[str, str]) -> str:
    """The stage's command, environment, and the text of every recipe file its command names: a changed
    variable in the train config redoes the train stage."""
    named = {name: text for name, text in files.items() if name in (stage.run or "")}
    body = json.dumps({"run": argv(stage), "ask": stage.ask and stage.ask.model_dump(), "env": stage.env,
                       "files": named}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


class RecipeRun:
    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self.base = Path(recipe.vars["recipe_dir"])   # stages run here: relative paths read as in the recipe file
        self.work = Path(recipe.work)                  # absolute once loaded
        self.state = self.work / "recipe" / "state"
        self.logs = self.work / "recipe" / "logs"
        self.files = {name: yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)
                      for name, tree in recipe.files.items()}

    def _marker(self, stage: Stage) -> Path:
        return self.state / f"{stage.name}.json"

    def is_done(self, stage: Stage) -> bool:
        marker = self._marker(stage)
        if not marker.is_file():
            return False
        try:
            saved = json.loads(marker.read_text())
        except json.JSONDecodeError:
            return False
        return saved.get("fingerprint") == _fingerprint(stage, self.files) and all(
            (self.base / o).exists() for o in stage.outputs)

    def run(self, start: str | None = None, only: list[str] | None = None) -> list[StageResult]:
        """Every stage in order; `start` redoes that stage and the ones after it; `only` runs just those."""
        stages = self.recipe.stages
        redo = self.recipe.stage(start) if start else len(stages)
        chosen = {self.recipe.stages[self.recipe.stage(n)].name for n in only} if only else None
        results: list[StageResult] = []
        for name, text in self.files.items():
            write_text(self.work / name, text)
        if self.recipe.description:
            print(self.recipe.description.strip(), flush=True)
        for i, stage in enumerate(stages):
            if chosen is not None and stage.name not in chosen:
                continue
            banner = f"[{i + 1}/{len(stages)}] {stage.name}"
            if i < redo and self.is_done(stage):
                print(f"{banner}: done earlier, skipped ({self._marker(stage)})", flush=True)
                results.append(StageResult(stage.name, "skipped", 0.0))
                continue
            what = f"seektune {stage.run}" if stage.run else f"ask {stage.ask.model}"
            redo = min(redo, i)   # what follows reads what this stage writes
            print(f"\n{'=' * 8} {banner}: {what}", flush=True)
            began = time.monotonic()
            self._run_stage(stage)
            seconds = time.monotonic() - began
            self.state.mkdir(parents=True, exist_ok=True)
            marker = {"fingerprint": _fingerprint(stage, self.files), "seconds": seconds,
                      "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
            write_text(self._marker(stage), json.dumps(marker))
            results.append(StageResult(stage.name, "done", seconds))
            self._write_timings(results)
            print(f"{'=' * 8} {banner} finished in {seconds:.0f} s", flush=True)
        return results

    def _run_stage(self, stage: Stage) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{stage.name}.log"
        if stage.ask is not None:
            from seektune.recipe.ask import ask

            ask(stage.ask, self.base, log, stage.env)
            return
        command = [sys.executable, "-m", "seektune.cli", *argv(stage)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **stage.env}
        with log.open("wb") as sink:
            process = subprocess.Popen(command, cwd=self.base, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT)
            try:
                while chunk := process.stdout.read1(65536):   # raw chunks keep progress bars' \r intact
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.buffer.flush()
                    sink.write(chunk)
                code = process.wait()
            except KeyboardInterrupt:
                process.terminate()
                process.wait(30)
                raise
        if code != 0:
            raise StageFailed(f"stage {stage.name} failed (exit {code}); its log: {log}\nFix the cause and run the "
                              "same command again: finished stages are kept and skipped.")

    def _write_timings(self, results: list[StageResult]) -> None:
        path = self.work / "recipe" / "timings.json"
        earlier = json.loads(path.read_text()) if path.is_file() else {}
        for r in results:
            if r.status == "done":
                earlier[r.name] = round(r.seconds, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(earlier, indent=1))


def timing_table(recipe: Recipe, work: Path) -> str:
    """Markdown: each stage's seconds in its latest run, and the total."""
    path = work / "recipe" / "timings.json"
    seconds = json.loads(path.read_text()) if path.is_file() else {}
    rows = [f"| {s.name} | {seconds[s.name]:.0f} |" for s in recipe.stages if s.name in seconds]
    total = sum(seconds.get(s.name, 0.0) for s in recipe.stages)
    total_row = f"| **total** | **{total:.0f}** ({total / 60:.1f} min) |"
    return "\n".join(["| stage | seconds |", "|---|---:|", *rows, total_row])
