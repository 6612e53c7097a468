"""Resolve `model.name_or_path` and load a base tokenizer and model from the config (trained artifacts are
opened through seektune.artifacts)."""

from __future__ import annotations

from pathlib import Path

import torch

from seektune.config import ModelConfig
from seektune.errors import ModelError
from seektune.models.registry import PACKAGED, materialise, names_a_path
from seektune.models.templates import named_template
from seektune.models.vision import is_vision_language, unquantized_parts


def resolve(name_or_path: str) -> str:
    """Packaged name -> its cached directory; local directory -> itself; anything else is treated as a hub id."""
    if name_or_path in PACKAGED:
        return str(materialise(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is not a Hugging Face model directory (no config.json)")
        return str(path)
    if names_a_path(name_or_path):   # a path, not a hub id: say so
        raise ModelError(f"model directory not found: {path} (moved or deleted? an adapter names its base by the "
                         "path it was trained from: set base_model_name_or_path in its adapter_config.json, or pass "
                         "the base where the command takes one)")
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


# Config attributes that hold a dropout probability, across the architectures transformers ships.
_DROPOUT_KEYS = ("attention_dropout", "hidden_dropout", "dropout", "attn_pdrop", "resid_pdrop", "embd_pdrop",
                 "hidden_dropout_prob", "attention_probs_dropout_prob", "mlp_dropout")


def model_config(cfg: ModelConfig, source: str | None = None):
    """The checkpoint's config (read from config.json; no weights); `source`: the resolved name, when known."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(source or resolve(cfg.name_or_path), revision=cfg.revision,
                                      trust_remote_code=cfg.trust_remote_code)


def _model_config(cfg: ModelConfig, source: str):
    """The checkpoint's config with `model.dropout` applied to every dropout it exposes."""
    config = model_config(cfg, source)
    if cfg.dropout is not None:
        present = [k for k in _DROPOUT_KEYS if isinstance(getattr(config, k, None), (int, float))]
        if not present:
            raise ModelError(f"model.dropout: {type(config).__name__} exposes no dropout setting")
        for key in present:
            setattr(config, key, cfg.dropout)
    return config


HEADS = ("causal_lm", "reward")   # the LM head, or one scalar score (a reward model)


def load_model(cfg: ModelConfig, dtype: torch.dtype = torch.float32, quantization=None, head: str = "causal_lm",
               pad_token_id: int | None = None):
    """Load weights in `dtype` (fp32 master weights for training; autocast handles bf16 compute), optionally
    quantized by a transformers quantization config (QLoRA's frozen base). head "reward": the same transformer
    with a one-label sequence-classification head (new, or the saved one of a reward model), scored at the last
    non-pad token, so `pad_token_id` is recorded in its config."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoModelForSequenceClassification

    source = resolve(cfg.name_or_path)
    config = _model_config(cfg, source)
    auto = AutoModelForImageTextToText if is_vision_language(config) else AutoModelForCausalLM
    if head == "reward" and is_vision_language(config):
        raise ModelError(f"{cfg.name_or_path} is a vision-language model; reward heads are for text models")
    if head == "reward":
        auto, config.num_labels = AutoModelForSequenceClassification, 1
        if pad_token_id is not None:
            config.pad_token_id = pad_token_id
    try:
        model = auto.from_pretrained(
            source,
            config=config,
            revision=cfg.revision,
            trust_remote_code=cfg.trust_remote_code,
            dtype=dtype,
            attn_implementation=cfg.attn_implementation,
            quantization_config=unquantized_parts(quantization, config),
        )
    except OSError as exc:
        raise ModelError(
            f"cannot load model '{cfg.name_or_path}': {exc}\nNo hub access here: use a packaged name "
            "(`seektune models`), a local directory, or a hub id already in the HF cache."
        ) from None
    return model
