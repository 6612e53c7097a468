"""Artifact kinds: what a model directory holds and how to load, describe and merge it.

Detection is by the file each format is defined by (a GGUF model is one file, not a directory). Adding a kind is
one ArtifactKind here and its place in KINDS (first match wins, so more specific kinds come first). A pruned model
is a plain full model (smaller), so it needs no kind of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
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
    compressed: bool = False  # quantized or a GGUF file: compress the full-precision model it came from instead
    load_model: Callable[[Path, torch.dtype], nn.Module] | None = None  # None: transformers' from_pretrained(dir)
    load_tokenizer: Callable[[Path], object] | None = None


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


def _quantization(path: Path) -> dict | None:
    config = path / "config.json"
    return json.loads(config.read_text()).get("quantization_config") if config.is_file() else None


def _describe_quantized(path: Path) -> str:
    q = _quantization(path) or {}
    settings = q.get("quant_type") or q.get("bits") or ("nf4" if q.get("load_in_4bit") else "")
    if isinstance(settings, dict):   # torchao records its config class
        settings = settings.get("default", {}).get("_type", "")
    return f"{_describe_model(path)}, {q.get('quant_method', '?')} {settings}".rstrip()


def _is_gguf(path: Path) -> bool:
    return path.is_file() and path.suffix == ".gguf"


def _load_gguf(path: Path, dtype: torch.dtype) -> nn.Module:
    """transformers reads GGUF files itself (de-quantized to `dtype`) for the architectures it maps."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype)


def _load_gguf_tokenizer(path: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _describe_gguf(path: Path) -> str:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    field = reader.fields.get("general.architecture")
    arch = bytes(field.parts[field.data[0]]).decode() if field else "?"
    return f"GGUF {arch}, {path.stat().st_size / (1 << 20):.1f} MB"


QUANTIZED_MODEL = ArtifactKind(
    "quantized-model", lambda p: _quantization(p) is not None, lambda p: None, _describe_quantized, compressed=True)
GGUF_MODEL = ArtifactKind("gguf", _is_gguf, lambda p: None, _describe_gguf, compressed=True,
                          load_model=_load_gguf, load_tokenizer=_load_gguf_tokenizer)
FULL_MODEL = ArtifactKind("full-model", lambda p: (p / "config.json").is_file(), lambda p: None, _describe_model)

KINDS: tuple[ArtifactKind, ...] = (GGUF_MODEL, PEFT_ADAPTER, BOTTLENECK_ADAPTER, QUANTIZED_MODEL, FULL_MODEL)
