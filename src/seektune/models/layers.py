"""Whole-model helpers that every method and the loop share: the transformer layer list, what trains, and how
trainable weights are kept."""

from __future__ import annotations

import torch
from torch import nn

from seektune.errors import ConfigError
from seektune.models import vision


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer block list: the ModuleList whose length equals config.num_hidden_layers (the language
    model's, in a vision-language model, whose vision encoder has a layer list too)."""
    n = getattr(vision.text_config(model.config), "num_hidden_layers", None)
    root = vision.language_model(model) if vision.is_vision_language(model.config) else model
    for _, module in root.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise ConfigError("cannot find the transformer layer list of this model (freeze, hybrid, bottleneck and "
                      "layer-wise learning rates need it); its config has no num_hidden_layers matching a ModuleList")


def decoder_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """Every Linear inside the transformer layers, keyed "<layer index>.<name in the layer>" (the output head and
    embeddings are outside): what quantization and pruning act on."""
    return {f"{i}.{name}": m for i, layer in enumerate(decoder_layers(model))
            for name, m in layer.named_modules() if isinstance(m, nn.Linear)}


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


def store_frozen_in(model: nn.Module, dtype: torch.dtype) -> None:
    """Frozen fp32 weights stored in `dtype`: autocast would cast each of them to it at every forward and keep
    the copy for backward, so storing them so halves their memory and drops the casts. Buffers stay as they are."""
    for p in model.parameters():
        if not p.requires_grad and p.dtype == torch.float32:
            p.data = p.data.to(dtype)


def skip_adapter_input_casts(model: nn.Module) -> int:
    """peft casts each adapter layer's input to its weights' dtype (fp32 masters here) before the adapter's matmul;
    under autocast that matmul casts it straight back to bf16, so each LoRA layer made two full-size copies of its
    input and kept one of them for backward. While autocast is on, the same bf16 values reach the matmul without
    the round trip (bf16 -> fp32 -> bf16 is exact); outside autocast peft's cast still runs, so an fp32 adapter on a
    bf16 base keeps working there (e.g. a forward outside the loop). Layers with a variant (DoRA) keep peft's
    cast. Returns the number of layers changed."""
    from peft.tuners.lora import LoraLayer

    changed = 0
    for module in model.modules():
        if isinstance(module, LoraLayer) and not module.lora_variant:
            module.register_forward_pre_hook(_cast_only_outside_autocast)
            module.cast_input_dtype_enabled = False   # as under autocast, where training runs
            changed += 1
    return changed


def _cast_only_outside_autocast(module: nn.Module, args: tuple) -> None:
    x = args[0] if args else None
    device = x.device.type if isinstance(x, torch.Tensor) else "cpu"
    cast = not torch.is_autocast_enabled(device)
    if module.cast_input_dtype_enabled != cast:   # written only on a change: compiled layers see a constant
        module.cast_input_dtype_enabled = cast
