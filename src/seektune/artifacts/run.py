"""A run directory, `<output.dir>/<output.name>/`, and the one place that knows its layout:

  config.yaml        the resolved config (every default filled in)
  checkpoints/       step-N/ (complete only with its COMPLETE marker; written by seektune.train.checkpoint)
  final/             the artifact (a standard HF or PEFT directory + tokenizer + seektune_method.json)
  metrics.jsonl, loss.png, data_report.json, result.json, tracking/ (TensorBoard, MLflow... when asked)
"""

from __future__ import annotations

import shutil
from pathlib import Path

from seektune import config as config_io
from seektune.config import Config
from seektune.errors import CheckpointError, ConfigError


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.yaml")
    checkpoints = property(lambda self: self.path / "checkpoints")
    final = property(lambda self: self.path / "final")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    loss_plot = property(lambda self: self.path / "loss.png")
    data_report = property(lambda self: self.path / "data_report.json")
    result = property(lambda self: self.path / "result.json")
    tracking = property(lambda self: self.path / "tracking")

    def check_same_config(self, cfg: Config) -> None:
        """--resume continues the run it finds; a changed config would silently train something else."""
        if not self.config.is_file():
            return
        old = config_io.load(self.config).model_dump(exclude={"output"})
        new = cfg.model_dump(exclude={"output"})
        diff = [f"{s}.{k}" for s in new for k in new[s] if old[s].get(k) != new[s][k]]
        if diff:
            raise CheckpointError(f"--resume needs the run's own config; these keys differ: {', '.join(diff)}")

    def start_fresh(self, cfg: Config, replace: bool) -> None:
        """Create the directory and save the resolved config. An existing run is replaced only when `replace`
        (output.overwrite, or --resume with nothing to resume); otherwise the user is told what to do."""
        if self.path.exists() and any(self.path.iterdir()):
            if not replace:
                hint = "--resume to continue it" if not self.final.exists() else "another output.name"
                raise ConfigError(f"run directory {self.path} already exists; use {hint}, or output.overwrite=true")
            shutil.rmtree(self.path)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        config_io.save(cfg, self.config)
