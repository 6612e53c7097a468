"""Resolve `model.name_or_path` and load the tokenizer and model for training or inference."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from seektune.config import ModelConfig
from seektune.errors import ModelError
from seektune.models.registry import PACKAGED, materialise
from seektune.models.templates import named_template


def resolve(name_or_path: str) -> str:
    """Packaged name -> its cached directory; local directory -> itself; anything else is treated as a hub id."""
    if name_or_path in PACKAGED:
        return str(materialise(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is not a Hugging Face model directory (no config.json)")
        return str(path)
    return name_or_path


def load_tokenizer(cfg: ModelConfig):
    from transformers import AutoTokenizer

    source = resolve(cfg.name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code
        )
    except OSError as exc:
        raise ModelError(
            f"cannot load tokenizer '{cfg.name_or_path}': {exc}\nNo hub access here: use a packaged name "
            "(`seektune models`), a local directory, or a hub id already in the HF cache."
        ) from None
    if cfg.chat_template:
        tokenizer.chat_template = named_template(cfg.chat_template)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(cfg: ModelConfig, dtype: torch.dtype = torch.float32):
    """Load weights in `dtype` (fp32 master weights for training; autocast handles bf16 compute)."""
    from transformers import AutoModelForCausalLM

    source = resolve(cfg.name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source,
            revision=cfg.revision,
            trust_remote_code=cfg.trust_remote_code,
            dtype=dtype,
            attn_implementation=cfg.attn_implementation,
        )
    except OSError as exc:
        raise ModelError(
            f"cannot load model '{cfg.name_or_path}': {exc}\nNo hub access here: use a packaged name "
            "(`seektune models`), a local directory, or a hub id already in the HF cache."
        ) from None
    return model


def is_adapter_dir(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


def load_for_inference(run_or_model: str, dtype: torch.dtype = torch.float32):
    """Load a run directory (its final/), a PEFT adapter directory, a full HF directory or a packaged name."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(run_or_model)
    if (path / "final").is_dir():
        path = path / "final"
    if path.is_dir() and is_adapter_dir(path):
        base = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
        model = AutoModelForCausalLM.from_pretrained(resolve(base), dtype=dtype)
        model = PeftModel.from_pretrained(model, str(path))
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    elif path.is_dir():
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    else:
        cfg = ModelConfig(name_or_path=run_or_model)
        model, tokenizer = load_model(cfg, dtype), load_tokenizer(cfg)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer
