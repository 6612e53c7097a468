"""Several adapters on one base: find them, load them side by side, combine them, merge one into the base.

Combining goes through peft's `add_weighted_adapter` (linear, cat, svd, TIES, DARE, magnitude pruning), so the
result is an ordinary LoRA adapter directory. Merging folds an adapter into a copy of the base weights and saves
a plain transformers model (for serving or export without peft).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from seektune.errors import ConfigError, ModelError
from seektune.models.loading import adapter_base, artifact_dir, attach_adapter, is_adapter_dir, resolve
from seektune.models.methods import METHOD_FILE, read_method_info

COMBINATIONS = ("linear", "cat", "svd", "ties", "ties_svd", "dare_linear", "dare_ties", "magnitude_prune")


@dataclass
class AdapterInfo:
    path: Path
    method: str
    base: str
    detail: str

    @property
    def name(self) -> str:
        return self.path.parent.name if self.path.name == "final" else self.path.name


def describe(path: Path) -> AdapterInfo | None:
    from seektune.models import bottleneck

    if bottleneck.is_bottleneck_dir(path):
        meta = bottleneck.read_config(path)
        return AdapterInfo(path, "bottleneck", meta["base_model_name_or_path"],
                           f"dim={meta['dim']} at {'+'.join(meta['placement'])}")
    if not is_adapter_dir(path):
        return None
    cfg = json.loads((path / "adapter_config.json").read_text())
    method = read_method_info(path).get("method") or cfg.get("peft_type", "?").lower()
    detail = ", ".join(f"{k}={cfg[k]}" for k in ("r", "lora_alpha", "num_virtual_tokens") if cfg.get(k) is not None)
    return AdapterInfo(path, method, cfg.get("base_model_name_or_path", "?"), detail)


def find(root: str | Path) -> list[AdapterInfo]:
    """Every adapter under `root`: run directories' final/ and bare adapter directories."""
    root = Path(root)
    found = []
    for marker in sorted({*root.rglob("adapter_config.json"), *root.rglob("bottleneck_config.json")}):
        if "checkpoints" in marker.parts or marker.parent.name.startswith("."):
            continue
        info = describe(marker.parent)
        if info:
            found.append(info)
    return found


def load_many(paths: list[str | Path], dtype: torch.dtype = torch.float32):
    """One base with several LoRA-family adapters, named after their run directories; `set_adapter(name)` picks."""
    from transformers import AutoModelForCausalLM

    dirs = [artifact_dir(p) for p in paths]
    infos = [describe(d) for d in dirs]
    if any(i is None or i.method == "bottleneck" for i in infos):
        raise ModelError("load several adapters: every path must be a peft adapter (run dir or adapter dir)")
    bases = {resolve(i.base) for i in infos}
    if len(bases) != 1:
        raise ModelError(f"the adapters were trained on different bases: {sorted(bases)}")
    names = [i.name for i in infos]
    if len(set(names)) != len(names):
        raise ModelError(f"adapter names must differ (they come from the directory names): {names}")
    model = AutoModelForCausalLM.from_pretrained(bases.pop(), dtype=dtype)
    for d, name in zip(dirs, names):
        model = attach_adapter(model, d, adapter_name=name)
    model.eval()
    return model, names


def combine(paths: list[str | Path], out: str | Path, weights: list[float] | None = None,
            combination: str = "linear", density: float | None = None) -> Path:
    """Combine LoRA adapters into one new adapter directory (with the first adapter's tokenizer)."""
    if combination not in COMBINATIONS:
        raise ConfigError(f"--method must be one of {', '.join(COMBINATIONS)}")
    if len(paths) < 2:
        raise ConfigError("combine needs at least two adapters")
    weights = weights or [1.0 / len(paths)] * len(paths)
    if len(weights) != len(paths):
        raise ConfigError(f"{len(weights)} weights for {len(paths)} adapters")
    if combination.startswith(("ties", "dare", "magnitude")) and density is None:
        raise ConfigError(f"--density is required for {combination} (fraction of each adapter's weights kept)")
    model, names = load_many(paths)
    try:
        model.add_weighted_adapter(names, weights, "default" if "default" not in names else "combined",
                                   combination_type=combination, density=density)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot combine these adapters with {combination}: {exc}") from None
    new = "default" if "default" not in names else "combined"
    first = artifact_dir(paths[0])

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp), selected_adapters=[new])
        if new != "default":  # peft writes non-default adapters into a sub-directory
            for f in (tmp / new).iterdir():
                f.replace(tmp / f.name)
            (tmp / new).rmdir()
        (tmp / METHOD_FILE).write_text(json.dumps({
            "method": "lora", "mergeable": True, "combined_from": [str(artifact_dir(p)) for p in paths],
            "weights": weights, "combination": combination, "density": density,
            "peft_moe_rewrite_disabled": read_method_info(first).get("peft_moe_rewrite_disabled", False)}, indent=1))

    return _publish_with_tokenizer(Path(out), write, first)


def _publish_with_tokenizer(out: Path, write, tokenizer_dir: Path) -> Path:
    """Build `out` in a temporary sibling (`write(tmp)` plus the tokenizer), then rename it into place."""
    from transformers import AutoTokenizer

    from seektune.train.checkpoint import publish

    tmp = out.with_name(f".{out.name}-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(str(tmp))
    publish(tmp, out)
    return out


def merge(run_or_adapter: str | Path, out: str | Path) -> Path:
    """Fold an adapter into its base and save a plain transformers model directory."""
    from transformers import AutoModelForCausalLM

    path = artifact_dir(run_or_adapter)
    info = read_method_info(path)
    if not is_adapter_dir(path) or info.get("mergeable") is False:
        method = info.get("method", "this artifact")
        raise ConfigError(f"{path}: {method} cannot be merged into the base weights "
                          "(only LoRA-family and IA3 adapters are linear in the weights); serve it with its adapter")
    model = AutoModelForCausalLM.from_pretrained(resolve(adapter_base(path)), dtype=torch.float32)
    merged = attach_adapter(model, path).merge_and_unload()
    return _publish_with_tokenizer(Path(out), lambda tmp: merged.save_pretrained(str(tmp)), path)
