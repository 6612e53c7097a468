"""Structured pruning: whole MLP channels (rows of gate/up, columns of down) and, optionally,
whole attention KV groups (a key/value head with the query heads that share it) are removed, so the result is a
smaller dense model (smaller `intermediate_size`, fewer heads) that plain transformers loads, and that really is
smaller and faster, unlike zeros inside dense matrices. Importance is the weights' L1 norm (`l1-channels`) or,
with calibration samples, activation-aware (`activation-channels`).

Every layer loses the same number of channels (each its own least important ones), so one `intermediate_size`
describes the model and its config stays standard. Heads go by whole KV groups so grouped-query attention keeps
its shape; `head_dim` is written to the config because hidden_size / heads no longer gives it.
"""

from __future__ import annotations

import torch
from torch import nn

from seektune.compress.sparsity import input_norms
from seektune.errors import ConfigError
from seektune.models.layers import decoder_layers


def _mlp(layer: nn.Module) -> nn.Module:
    mlp = getattr(layer, "mlp", None)
    if mlp is None or not all(isinstance(getattr(mlp, n, None), nn.Linear) for n in ("gate_proj", "up_proj", "down_proj")):
        raise ConfigError("channel pruning needs gated MLPs (gate_proj, up_proj, down_proj: Llama, Qwen2, Mistral, "
                          f"DeepSeek's dense layers); this layer has {type(mlp).__name__} (mixture-of-experts layers "
                          "are not pruned by channel)")
    return mlp


def _slice(linear: nn.Linear, keep: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear with only the kept output rows (dim 0) or input columns (dim 1)."""
    weight = linear.weight.data.index_select(dim, keep).clone()
    bias = linear.bias
    if bias is not None and dim == 0:
        bias = bias.data.index_select(0, keep).clone()
    out = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device, dtype=weight.dtype)
    out.weight.data.copy_(weight)
    if bias is not None:
        out.bias.data.copy_(bias.data if isinstance(bias, nn.Parameter) else bias)
    return out


def channel_scores(mlp: nn.Module) -> torch.Tensor:
    """L1 norm of everything one intermediate channel owns: its gate and up rows and its down column."""
    return (mlp.gate_proj.weight.abs().sum(1) + mlp.up_proj.weight.abs().sum(1)
            + mlp.down_proj.weight.abs().sum(0)).float()


def group_scores(attn: nn.Module, heads: int, kv_heads: int, head_dim: int) -> torch.Tensor:
    """L1 norm of each KV group: its key and value rows, its query heads' rows and their output columns."""
    per_group = heads // kv_heads
    q = attn.q_proj.weight.abs().reshape(kv_heads, per_group * head_dim, -1).sum((1, 2))
    o = attn.o_proj.weight.abs().reshape(attn.o_proj.weight.shape[0], kv_heads, per_group * head_dim).sum((0, 2))
    k = attn.k_proj.weight.abs().reshape(kv_heads, head_dim, -1).sum((1, 2))
    v = attn.v_proj.weight.abs().reshape(kv_heads, head_dim, -1).sum((1, 2))
    return (q + o + k + v).float()


def activation_channel_scores(model: nn.Module, samples: list[list[int]]) -> list[torch.Tensor]:
    """Per layer, each channel's activation-aware importance: the L2 norm of its activation (the down
    projection's input) over the calibration tokens times the L1 norm of its down column, i.e. Wanda's score
    summed over the channel (as FLAP and Wanda-sp score structures). Weight norms alone miss channels whose
    small weights carry large activations, and removing those breaks the model."""
    norms = input_norms(model, samples)
    return [norms[f"{i}.mlp.down_proj"] * _mlp(layer).down_proj.weight.abs().sum(0).float()
            for i, layer in enumerate(decoder_layers(model))]


def prune_mlp_channels(model: nn.Module, keep_channels: int, scores: list[torch.Tensor] | None = None) -> None:
    """Keep the `keep_channels` most important channels of every layer (by `scores`, else by L1 norm)."""
    for i, layer in enumerate(decoder_layers(model)):
        mlp = _mlp(layer)
        score = scores[i] if scores is not None else channel_scores(mlp)
        keep = torch.topk(score, keep_channels).indices.sort().values
        mlp.gate_proj = _slice(mlp.gate_proj, keep, 0)
        mlp.up_proj = _slice(mlp.up_proj, keep, 0)
        mlp.down_proj = _slice(mlp.down_proj, keep, 1)
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = keep_channels
    model.config.intermediate_size = keep_channels


def prune_kv_groups(model: nn.Module, keep_groups: int) -> None:
    config = model.config
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    per_group = heads // kv_heads
    for layer in decoder_layers(model):
        attn = layer.self_attn
        if not all(isinstance(getattr(attn, n, None), nn.Linear) for n in ("q_proj", "k_proj", "v_proj", "o_proj")):
            raise ConfigError(f"head pruning needs q/k/v/o projections; {type(attn).__name__} has others (MLA): "
                              "prune MLP channels only")
        groups = torch.topk(group_scores(attn, heads, kv_heads, head_dim), keep_groups).indices.sort().values
        kv_rows = (groups[:, None] * head_dim + torch.arange(head_dim)).flatten()
        q_rows = (groups[:, None] * per_group * head_dim + torch.arange(per_group * head_dim)).flatten()
        attn.q_proj = _slice(attn.q_proj, q_rows, 0)
        attn.k_proj = _slice(attn.k_proj, kv_rows, 0)
        attn.v_proj = _slice(attn.v_proj, kv_rows, 0)
        attn.o_proj = _slice(attn.o_proj, q_rows, 1)
    config.num_attention_heads = keep_groups * per_group
    config.num_key_value_heads = keep_groups
    config.head_dim = head_dim


def prune_structured(model: nn.Module, channels: int, kv_groups: int | None,
                     samples: list[list[int]] | None = None) -> dict:
    """Keep `channels` MLP channels per layer (and `kv_groups` KV groups when given), in place; channels are
    scored on activations when calibration `samples` are given, else by weight L1 norm (heads always by L1).
    Returns the new shape, for the record."""
    config = model.config
    if channels < config.intermediate_size:
        scores = activation_channel_scores(model, samples) if samples is not None else None
        prune_mlp_channels(model, channels, scores)
    out = {"intermediate_size": config.intermediate_size}
    if kv_groups is not None:
        if kv_groups < (config.num_key_value_heads or config.num_attention_heads):
            prune_kv_groups(model, kv_groups)
        out.update(num_attention_heads=config.num_attention_heads, num_key_value_heads=config.num_key_value_heads)
    return out
