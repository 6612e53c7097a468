"""The earlier runs a continual run builds on: their config (which data they trained on), their final model, and
the model this run starts from."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from seektune import config as config_io
from seektune.artifacts import RunDir, open_artifact
from seektune.artifacts.artifact import Artifact
from seektune.config import Config
from seektune.data.batching import Row
from seektune.data.dataset import build as build_data
from seektune.errors import ConfigError

log = logging.getLogger("seektune.train")


@dataclass
class PreviousRun:
    run: RunDir
    cfg: Config
    artifact: Artifact

    _rows: dict = field(default_factory=dict, repr=False)   # seed -> rendered rows (the Fisher and replay share them)

    def rows(self, tokenizer, seed: int) -> list[Row]:
        """Its training samples rendered with this run's tokenizer, one sample per row (no packing), so each row
        has its own loss (prioritised replay) and gradient (Fisher). Rendered once per run and seed."""
        if seed not in self._rows:
            data = self.cfg.data.model_copy(update={"packing": False, "eval": [], "eval_fraction": 0.0})
            self._rows[seed] = build_data(data, tokenizer, seed).train
        return self._rows[seed]


def open_previous(path: str, key: str = "continual.previous") -> PreviousRun:
    run = RunDir(path)
    if not run.config.is_file() or not run.final.is_dir():
        raise ConfigError(f"{key}: {path} is not a finished seektune run (it needs config.yaml and final/); "
                          "train it first, or name the run directory rather than its final/")
    cfg = config_io.load(run.config)
    return PreviousRun(run, cfg, open_artifact(run.final))


def check_same_base(cfg: Config, previous: list[PreviousRun]) -> None:
    """Every earlier run must have tuned the model this run names: its tokenizer and architecture."""
    for p in previous:
        if p.cfg.model.name_or_path != cfg.model.name_or_path:
            raise ConfigError(f"continual.previous: {p.run.path} tuned {p.cfg.model.name_or_path}, this run names "
                              f"model.name_or_path={cfg.model.name_or_path}; set it to the same base (the weights "
                              "start from the earlier run's final model either way)")


def start_model(last: PreviousRun, run: RunDir) -> str:
    """The directory this run's weights start from: the last earlier run's final model as it is, or, for an
    adapter, its base with the adapter merged in, written once to <run>/start/ (the base this run's own adapter
    then names, so it loads with plain peft)."""
    artifact = last.artifact
    if artifact.kind.attach is None:
        return str(artifact.path.resolve())
    if not artifact.mergeable:
        raise ConfigError(f"continual.previous: {last.run.path} trained {artifact.method}, which cannot be merged "
                          "into its base to start the next task from; continue from a LoRA-family, IA3 or full run")
    target = run.path / "start"
    if not (target / "config.json").is_file():
        log.info("merging %s into its base as the start of this run: %s", artifact.path, target)
        artifact.merge(target)
    return str(target.resolve())


def fisher_meta(p: PreviousRun, samples: int, seed: int) -> dict:
    """What a saved Fisher was computed from; a different value means recompute."""
    return {"model": str(p.artifact.path.resolve()), "data": [f.path for f in p.cfg.data.train],
            "samples": samples, "seed": seed}


def artifact_weights_model(p: PreviousRun):
    """The earlier run's final weights as one plain transformers model (adapters merged), for its Fisher."""
    model = p.artifact.load_model()
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
