"""What a compression verb starts from: a run, an adapter or any model directory, as one full-precision model
(an adapter merged into its base first) with its tokenizer, the run's config when there is one (its training
data calibrates GPTQ, AWQ and Wanda), and the size of the weights a user would otherwise ship."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from seektune import config as config_io
from seektune.artifacts import open_artifact
from seektune.artifacts.artifact import Artifact
from seektune.compress.record import weights_bytes
from seektune.config import Config
from seektune.errors import ConfigError
from seektune.models.loading import resolve

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Source:
    artifact: Artifact
    model: torch.nn.Module          # merged, eval mode, float32
    tokenizer: object
    run_cfg: Config | None          # the run's resolved config, when `ref` is a run (or its final/)
    stored_dtype: torch.dtype       # the dtype the weights are stored in (the size a user would ship)
    bytes_before: int

    @property
    def base_model(self) -> str | None:
        return self.artifact.base_model


def _stored_dtype(model_dir: Path) -> torch.dtype:
    cfg = json.loads((model_dir / "config.json").read_text())
    return _DTYPES.get(str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32"), torch.float32)


def run_config(artifact: Artifact) -> Config | None:
    """The config of the run whose final/ this is, or None for a bare model or adapter directory."""
    run_file = artifact.path.parent / "config.yaml"
    return config_io.load(run_file) if artifact.path.name == "final" and run_file.is_file() else None


def open_source(ref: str | Path) -> Source:
    """Load `ref` for compression. Adapters that are not linear in the weights (prompt tuning, bottleneck
    adapters) cannot be folded into a plain model, so they are refused with what to do instead."""
    artifact = open_artifact(ref)
    if artifact.head != "causal_lm":
        raise ConfigError(f"{ref} is a {artifact.head} model; compression takes a causal LM")
    if artifact.kind.attach is not None and not artifact.mergeable:
        raise ConfigError(f"{ref}: a {artifact.method} adapter cannot be merged into its base weights, so its "
                          "base cannot be compressed with it; compress a full, freeze or LoRA-family run")
    if artifact.kind.compressed:
        raise ConfigError(f"{ref} is already compressed ({artifact.kind.name}); compress the full-precision model "
                          "it came from (its compression.json names it)")
    model, tokenizer = artifact.load(torch.float32)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.eval()
    source_dir = Path(resolve(artifact.base_model)) if artifact.base_model else Path(artifact.source)
    return Source(artifact, model, tokenizer, run_config(artifact), _stored_dtype(source_dir),
                  weights_bytes(source_dir))
