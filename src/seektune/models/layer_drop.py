"""Layer dropping: a model with only some of its decoder layers, the standard start for a distillation student
(DistilBERT kept every other layer; Sheared-LLaMA and Minitron prune depth the same way before distilling).

The kept layers are renumbered 0..k-1 everywhere the model or its config indexes them: each attention's
`layer_idx` (the KV cache slot), `config.num_hidden_layers`, per-layer config lists (`layer_types`) and
DeepSeek's `first_k_dense_replace` (how many leading layers are dense), so the saved directory loads and
generates with plain transformers.
"""

from __future__ import annotations

from torch import nn

from seektune.errors import ConfigError
from seektune.models.layers import decoder_layers

_PER_LAYER_LISTS = ("layer_types", "mlp_layer_types", "sliding_window_pattern_list")


def drop_layers(model: nn.Module, keep: list[int]) -> nn.Module:
    """Keep the decoder layers at `keep` (sorted, distinct), in place; returns the model."""
    layers = decoder_layers(model)
    n = len(layers)
    keep = sorted(set(keep))
    if not keep or keep[0] < 0 or keep[-1] >= n:
        raise ConfigError(f"layers to keep must be within 0-{n - 1} (the model has {n}); got {keep}")
    config = model.config
    dense = getattr(config, "first_k_dense_replace", None)
    kept = nn.ModuleList([layers[i] for i in keep])
    for new_index, layer in enumerate(kept):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    parent = next(m for m in model.modules() if any(child is layers for child in m.children()))
    name = next(k for k, child in parent.named_children() if child is layers)
    setattr(parent, name, kept)
    config.num_hidden_layers = len(keep)
    for key in _PER_LAYER_LISTS:
        values = getattr(config, key, None)
        if isinstance(values, (list, tuple)) and len(values) == n:
            setattr(config, key, [values[i] for i in keep])
    if isinstance(dense, int):
        config.first_k_dense_replace = sum(i < dense for i in keep)   # kept dense layers still come first
    return model
