"""The transformers model below a peft wrapper: code that reads a model's config or calls its parts (decoder,
head, vision tower) works the same with and without an adapter."""

from __future__ import annotations

from torch import nn


def unwrap_peft(model: nn.Module) -> nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model
