"""Prepare a loaded model for a training method. Adding a method touches only this module.

full   every parameter trains.
freeze only the last N transformer layers (+ final norm), optionally the head and embeddings, train.
lora   peft LoRA on named modules, 'all-linear', or a DeepSeek preset that knows MLA and MoE names.
"""

from __future__ import annotations

import torch
from torch import nn

from seektune.config import MethodConfig
from seektune.errors import ConfigError

# DeepSeek-V2/V3 module names. MLA: q_a/q_b (or q_proj when q_lora_rank is None), kv_a_proj_with_mqa, kv_b_proj,
# o_proj. MLPs: gate/up/down_proj. The router (mlp.gate) is never wrapped.
# In transformers 5 the routed experts are fused 3-D parameters, and peft 0.21 maps every gate/up/down_proj target
# onto them as well (its v4->v5 shim, no opt-out), so an MLP preset always covers dense, shared and routed experts;
# peft adapts fused parameters only with lora_dropout=0.
DEEPSEEK_ATTENTION = ["q_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"]
DEEPSEEK_MLP = ["gate_proj", "up_proj", "down_proj"]

PRESETS: dict[str, tuple[list[str], list[str]]] = {
    "deepseek": (DEEPSEEK_ATTENTION + DEEPSEEK_MLP, []),
    "deepseek-attention": (DEEPSEEK_ATTENTION, []),
}


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer block list: the ModuleList whose length equals config.num_hidden_layers."""
    n = getattr(model.config, "num_hidden_layers", None)
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise ConfigError("method.freeze: cannot find the transformer layer list of this model")


def _prepare_freeze(model: nn.Module, cfg: MethodConfig) -> nn.Module:
    layers = decoder_layers(model)
    k = cfg.freeze.trainable_layers
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


def _prepare_lora(model: nn.Module, cfg: MethodConfig) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    lora = cfg.lora
    targets, target_params = lora.target_modules, list(lora.target_parameters)
    if isinstance(targets, str) and targets in PRESETS:
        names, preset_params = PRESETS[targets]
        present = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
        targets = [n for n in names if n in present]
        target_params += preset_params
        if not targets:
            raise ConfigError(f"method.lora.target_modules: preset '{lora.target_modules}' matched no module")
    peft_cfg = LoraConfig(
        r=lora.r,
        lora_alpha=lora.lora_alpha,
        lora_dropout=lora.lora_dropout,
        target_modules=targets,
        target_parameters=target_params or None,
        modules_to_save=lora.modules_to_save or None,
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, peft_cfg)
    except ValueError as exc:
        if "lora_dropout" in str(exc):
            raise ConfigError(
                "method.lora.lora_dropout must be 0 here: the targets include fused MoE expert parameters "
                "(peft maps gate/up/down_proj onto them) and peft has no dropout for those; or use "
                "target_modules: deepseek-attention"
            ) from None
        raise ConfigError(f"method.lora: {exc}") from None


def prepare(model: nn.Module, cfg: MethodConfig) -> nn.Module:
    if cfg.name == "full":
        model.requires_grad_(True)
        return model
    if cfg.name == "freeze":
        return _prepare_freeze(model, cfg)
    return _prepare_lora(model, cfg)


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


def output_head(model: nn.Module) -> nn.Module:
    return model.get_output_embeddings()


def float32_master(model: nn.Module) -> None:
    """Trainable parameters are kept in fp32 so AdamW updates are exact; autocast handles lower-precision compute."""
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
