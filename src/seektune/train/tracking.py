"""What a user watches and keeps: metrics.jsonl, loss.png, and the experiment trackers the config asks for
(`train.report_to`: tensorboard, wandb, mlflow, trackio through accelerate, each in its offline/local mode)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from seektune.atomic import append_jsonl
from seektune.errors import ConfigError

_AVAILABLE = {"tensorboard": "is_tensorboard_available", "wandb": "is_wandb_available",
              "mlflow": "is_mlflow_available", "trackio": "is_trackio_available"}
_INSTALL = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio"}


def prepare_trackers(report_to: list[str], directory: Path) -> list[str]:
    """Check each requested tracker is installed and point it at the run's tracking/ folder, offline: nothing
    leaves the machine unless the user's own environment says otherwise (WANDB_MODE, MLFLOW_TRACKING_URI...)."""
    import accelerate.utils

    missing = [name for name in report_to if not getattr(accelerate.utils, _AVAILABLE[name])()]
    if missing:
        raise ConfigError(f"train.report_to: {', '.join(missing)} not installed; pip install "
                          + " ".join(_INSTALL[m] for m in missing))
    if "wandb" in report_to:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_DIR", str(directory))
    if "mlflow" in report_to:
        os.environ.setdefault("MLFLOW_TRACKING_URI", (directory / "mlruns").resolve().as_uri())
    if "trackio" in report_to:
        os.environ.setdefault("TRACKIO_DIR", str(directory / "trackio"))
    return list(report_to)


def flat_config(tree: dict, prefix: str = "") -> dict:
    """A nested config as dotted scalar keys, the shape trackers' hyper-parameter tables accept."""
    out: dict = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else json.dumps(value)
    return out


def scalars(record: dict, prefix: str = "") -> dict[str, float]:
    """The numbers of a metrics record for the trackers (nested dicts as name/key; step itself excluded)."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key == "step" and not prefix:
            continue
        if isinstance(value, dict):
            out.update(scalars(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = value
    return out


class MetricsLog:
    """Append-only JSON lines, flushed per write so a crash loses nothing already logged; each record also goes
    to the experiment trackers through `log(values, step)` (accelerate's `Accelerator.log`) when given."""

    def __init__(self, path: Path, enabled: bool = True, log=None):
        self.path, self.enabled, self.log = path, enabled, log

    def truncate_after(self, step: int) -> None:
        """On resume, drop lines a killed run logged after its last checkpoint (they will be logged again)."""
        if not (self.enabled and self.path.is_file()):
            return
        keep = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in keep))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        append_jsonl(self.path, record, sync=False)
        if self.log is not None:
            self.log(scalars(record), step=record.get("step"))


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def plot_loss(metrics_path: Path, out: Path) -> None:
    """Training loss per step and eval loss where measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train loss", linewidth=1.2)
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy per supervised token")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
