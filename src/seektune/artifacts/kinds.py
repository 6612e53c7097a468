"""Artifact kinds: what a model directory holds and how to load, describe and merge it.

Detection is by the file each format is defined by. Adding a kind (quantized, pruned, GGUF...) is one
ArtifactKind here and its place in KINDS (first match wins, so more specific kinds come first).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from seektune.models.methods import bottleneck


@dataclass(frozen=True)
class ArtifactKind:
    name: str
    detect: Callable[[Path], bool]
    base: Callable[[Path], str | None]  # the base model it is applied to; None: self-contained
    describe: Callable[[Path], str]
    attach: Callable[[nn.Module, Path, str, dict], nn.Module] | None = None  # put it on a loaded base
    mergeable: bool = False  # the default when the method record does not say


def _peft_config(path: Path) -> dict:
    return json.loads((path / "adapter_config.json").read_text())


def _attach_peft(model: nn.Module, path: Path, adapter_name: str, info: dict) -> nn.Module:
    from peft import PeftModel

    from seektune.models.deepseek import moe_rewrite_disabled

    with moe_rewrite_disabled(info.get("peft_moe_rewrite_disabled", False)):
        if hasattr(model, "load_adapter") and hasattr(model, "peft_config"):  # a second adapter on one base
            model.load_adapter(str(path), adapter_name=adapter_name)
            return model
        return PeftModel.from_pretrained(model, str(path), adapter_name=adapter_name)


def _describe_peft(path: Path) -> str:
    cfg = _peft_config(path)
    return ", ".join(f"{k}={cfg[k]}" for k in ("r", "lora_alpha", "num_virtual_tokens") if cfg.get(k) is not None)


def _describe_bottleneck(path: Path) -> str:
    meta = bottleneck.read_config(path)
    return f"dim={meta['dim']} at {'+'.join(meta['placement'])}"


def _describe_model(path: Path) -> str:
    cfg = json.loads((path / "config.json").read_text())
    return f"{cfg.get('model_type', '?')}, {cfg.get('num_hidden_layers', '?')} layers"


PEFT_ADAPTER = ArtifactKind(
    "peft-adapter", lambda p: (p / "adapter_config.json").is_file(),
    lambda p: _peft_config(p)["base_model_name_or_path"], _describe_peft, _attach_peft, mergeable=True)
BOTTLENECK_ADAPTER = ArtifactKind(
    "bottleneck-adapter", bottleneck.is_bottleneck_dir, lambda p: bottleneck.read_config(p)["base_model_name_or_path"],
    _describe_bottleneck, lambda model, path, name, info: bottleneck.load(model, path))
FULL_MODEL = ArtifactKind("full-model", lambda p: (p / "config.json").is_file(), lambda p: None, _describe_model)

KINDS: tuple[ArtifactKind, ...] = (PEFT_ADAPTER, BOTTLENECK_ADAPTER, FULL_MODEL)