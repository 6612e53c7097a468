"""Prepare a loaded model for a training method, and save what it trained. Adding a method touches this module
and the module that implements it.

full        every parameter trains.
freeze      only the last N transformer layers (or all but a bottom fraction) + final norm, optionally head/embeddings.
lora        peft LoRA and its variants and the hybrid (models/peft_methods.py); qlora is the same on a 4/8-bit base.
adalora     peft AdaLoRA; the loop drives its rank reallocation (train/method_hooks.py).
ia3         peft IA3.
bottleneck  our own bottleneck adapters (models/bottleneck.py).
prompt, prefix, p_tuning   peft virtual-token methods.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from seektune.errors import ConfigError
from seektune.method_config import MethodConfig
from seektune.models import bottleneck, peft_methods
from seektune.models.deepseek import preset

METHOD_FILE = "seektune_method.json"  # beside every saved artifact: how it was trained and how to load it
MERGEABLE = {"lora", "qlora", "adalora", "ia3"}


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer block list: the ModuleList whose length equals config.num_hidden_layers."""
    n = getattr(model.config, "num_hidden_layers", None)
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise ConfigError("cannot find the transformer layer list of this model (freeze, hybrid, bottleneck and "
                      "layer-wise learning rates need it); its config has no num_hidden_layers matching a ModuleList")


def _prepare_freeze(model: nn.Module, cfg: MethodConfig) -> nn.Module:
    layers = decoder_layers(model)
    k = cfg.freeze.trainable_layers
    if cfg.freeze.frozen_fraction is not None:
        k = len(layers) - round(cfg.freeze.frozen_fraction * len(layers))
    if k > len(layers):
        raise ConfigError(f"method.freeze.trainable_layers={k} but the model has {len(layers)} layers")
    model.requires_grad_(False)
    for layer in list(layers)[len(layers) - k:]:
        layer.requires_grad_(True)
    if k > 0:
        norm = getattr(getattr(model, "model", None), "norm", None)  # final norm sits between the last layer and head
        if isinstance(norm, nn.Module):
            norm.requires_grad_(True)
    if cfg.freeze.train_head:
        model.get_output_embeddings().requires_grad_(True)
    if cfg.freeze.train_embeddings:
        model.get_input_embeddings().requires_grad_(True)
    return model


def prepare(model: nn.Module, cfg: MethodConfig, total_steps: int = 1, tokenizer_path: str = "") -> nn.Module:
    """Set what trains. `total_steps` feeds AdaLoRA's schedule; `tokenizer_path` prompt-tuning text init."""
    if cfg.name == "full":
        model.requires_grad_(True)
        return model
    if cfg.name == "freeze":
        return _prepare_freeze(model, cfg)
    if cfg.name in ("lora", "qlora"):
        return peft_methods.lora(model, cfg)
    if cfg.name == "adalora":
        return peft_methods.adalora(model, cfg, total_steps)
    if cfg.name == "ia3":
        return peft_methods.ia3(model, cfg)
    if cfg.name == "bottleneck":
        return bottleneck.attach(model, cfg.bottleneck)
    return peft_methods.virtual_tokens(model, cfg, tokenizer_path)


def uses_moe_rewrite_workaround(cfg: MethodConfig) -> bool:
    named = preset(cfg.lora.target_modules)
    return cfg.name in ("lora", "qlora", "adalora") and named is not None and named.needs_rewrite_disabled


def save_trained(model: nn.Module, cfg: MethodConfig, directory: Path, base_model: str) -> None:
    """Write the trained artifact: a peft adapter dir, a full HF model, or a bottleneck adapter dir."""
    if cfg.name == "bottleneck":
        bottleneck.save(model, cfg.bottleneck, directory, base_model)
    else:
        model.save_pretrained(directory)


def write_method_info(cfg: MethodConfig, directory: Path, base_model: str) -> None:
    """METHOD_FILE beside the artifact: how it was trained and how to load it."""
    info = {"method": cfg.name, "mergeable": cfg.name in MERGEABLE,
            "peft_moe_rewrite_disabled": uses_moe_rewrite_workaround(cfg), "base_model_name_or_path": base_model}
    (directory / METHOD_FILE).write_text(json.dumps(info, indent=1))


def read_method_info(directory: Path) -> dict:
    path = directory / METHOD_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def trainable_summary(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; tied weights counted once."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Checkpoint activations; with frozen embeddings the inputs must require grad or no gradient flows back."""
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()


def float32_master(model: nn.Module) -> None:
    """Trainable parameters are kept in fp32 so AdamW updates are exact; autocast handles lower-precision compute."""
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
