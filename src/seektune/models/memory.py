"""The memory a model's weights take, counted by what is stored: quantized tensor subclasses (torchao) hold
their int8 / int4 data and scales in inner tensors, and `numel() x element_size()` of the outer tensor would
report the de-quantized float size instead."""

from __future__ import annotations

import torch
from torch import nn


def tensor_bytes(tensor: torch.Tensor) -> int:
    flatten = getattr(type(tensor), "__tensor_flatten__", None)
    if flatten is not None and type(tensor) not in (torch.Tensor, nn.Parameter):
        names, _ = tensor.__tensor_flatten__()
        return sum(tensor_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer, each shared tensor once (tied embeddings)."""
    seen, total = set(), 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor_bytes(tensor)
    return total
