"""Quantization-aware training, a modifier on full, freeze and LoRA runs (`method.qat.bits`): torchao swaps the
decoder layers' Linear modules for fake-quantized ones before the method prepares the model, so every forward
sees the weights rounded as the deployed int8 / int4 model will hold them, and training learns around the
rounding. For LoRA the rounded weights are the frozen base ones LoRA adapts.

The saved model holds ordinary float weights (fake-quantized Linears are turned back into nn.Linear first, since
transformers cannot save torchao's modules); `seektune quantize --method int8|int4` then quantizes them with the
very scheme training simulated (`base_config`), which the run's method record names. The output head is left
float, as transformers' torchao loader leaves it.
"""

from __future__ import annotations

import torch
from torch import nn

from seektune.errors import ConfigError, ModelError
from seektune.method_config import QatConfig
from seektune.models.layers import decoder_linears


def base_config(bits: int, group_size: int):
    """The torchao weight-only scheme for `bits`: symmetric int8 per channel, or int4 in groups."""
    from torchao.quantization import IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerAxis, PerGroup

    if bits == 8:
        return IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0))
    return IntxWeightOnlyConfig(weight_dtype=torch.int4,
                                granularity=PerGroup(group_size) if group_size else PerAxis(0))


def prepare_qat(model: nn.Module, cfg: QatConfig) -> nn.Module:
    """Fake-quantize the decoder layers' Linears, in place (a no-op when method.qat.bits is unset)."""
    if cfg.bits is None:
        return model
    try:
        from torchao.quantization import quantize_
        from torchao.quantization.qat import QATConfig
    except ImportError:
        raise ModelError("method.qat needs torchao: pip install 'seektune[quantize]'") from None
    inside = {id(m) for m in decoder_linears(model).values()}
    if cfg.bits == 4 and cfg.group_size:
        bad = sorted({m.in_features for m in model.modules() if id(m) in inside and m.in_features % cfg.group_size})
        if bad:
            raise ConfigError(f"method.qat.group_size={cfg.group_size} does not divide the layer widths {bad}")
    quantize_(model, QATConfig(base_config(cfg.bits, cfg.group_size), step="prepare"),
              filter_fn=lambda module, name: id(module) in inside)
    return model


def to_float(model: nn.Module) -> nn.Module:
    """Turn fake-quantized Linears back into nn.Linear (same weights), in place, so the model saves."""
    from torchao.quantization.qat import FakeQuantizedLinear

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, FakeQuantizedLinear):
                setattr(parent, name, child.to_linear())
    return model


def record(cfg: QatConfig) -> dict:
    """What the method record says, so `seektune quantize` applies the scheme training simulated."""
    return {"bits": cfg.bits, "group_size": cfg.group_size if cfg.bits == 4 else 0}
