"""Several adapters on one base: load them side by side, or combine them into a new adapter.

Combining goes through peft's `add_weighted_adapter` (linear, cat, svd, TIES, DARE, magnitude pruning), so the
result is an ordinary LoRA adapter directory.
"""

from __future__ import annotations

from pathlib import Path

import torch

from seektune.artifacts.artifact import Artifact, open_artifact, write_artifact
from seektune.config import ModelConfig
from seektune.errors import ConfigError, ModelError
from seektune.method_config import COMBINATIONS
from seektune.models.loading import load_model, resolve


def load_many(refs: list[str | Path], dtype: torch.dtype = torch.float32, base: str | None = None):
    """One base with several peft adapters, named after their run directories; `set_adapter(name)` picks one.
    `base` replaces the base the adapters record (a moved or renamed copy of it). Returns (model, names)."""
    return _side_by_side([open_artifact(r) for r in refs], dtype, base)


def _side_by_side(artifacts: list[Artifact], dtype: torch.dtype = torch.float32, base: str | None = None):
    if any(a.kind.name != "peft-adapter" for a in artifacts):
        raise ModelError("load several adapters: every path must be a peft adapter (run dir or adapter dir)")
    bases = {resolve(base)} if base else {resolve(a.base_model) for a in artifacts}
    if len(bases) != 1:
        raise ModelError(f"the adapters were trained on different bases: {sorted(bases)}; pass the one base to "
                         "load them on")
    names = [a.name for a in artifacts]
    if len(set(names)) != len(names):
        raise ModelError(f"adapter names must differ (they come from the directory names): {names}")
    model = load_model(ModelConfig(name_or_path=bases.pop()), dtype)
    for artifact, name in zip(artifacts, names):
        model = artifact.attach_to(model, name)
    model.eval()
    return model, names


def combine(refs: list[str | Path], out: str | Path, weights: list[float] | None = None,
            combination: str = "linear", density: float | None = None) -> Path:
    """Combine LoRA adapters into one new adapter directory (with the first adapter's tokenizer)."""
    if combination not in COMBINATIONS:
        raise ConfigError(f"--method must be one of {', '.join(COMBINATIONS)}")
    if len(refs) < 2:
        raise ConfigError("combine needs at least two adapters")
    weights = weights or [1.0 / len(refs)] * len(refs)
    if len(weights) != len(refs):
        raise ConfigError(f"{len(weights)} weights for {len(refs)} adapters")
    if combination.startswith(("ties", "dare", "magnitude")) and density is None:
        raise ConfigError(f"--density is required for {combination} (fraction of each adapter's weights kept)")
    artifacts = [open_artifact(r) for r in refs]
    model, names = _side_by_side(artifacts)
    new = "default" if "default" not in names else "combined"
    try:
        model.add_weighted_adapter(names, weights, new, combination_type=combination, density=density)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot combine these adapters with {combination}: {exc}") from None
    first: Artifact = artifacts[0]

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp), selected_adapters=[new])
        if new != "default":  # peft writes non-default adapters into a sub-directory
            for f in (tmp / new).iterdir():
                f.replace(tmp / f.name)
            (tmp / new).rmdir()

    info = {"method": "lora", "mergeable": True, "combined_from": [str(a.path) for a in artifacts],
            "weights": weights, "combination": combination, "density": density,
            "peft_moe_rewrite_disabled": first.info.get("peft_moe_rewrite_disabled", False)}
    return write_artifact(Path(out), write, first.load_tokenizer(), info)
