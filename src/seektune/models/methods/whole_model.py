"""Methods that train the model's own weights and save a whole transformers model: full and freeze."""

from __future__ import annotations

from torch import nn

from seektune.errors import ConfigError
from seektune.method_config import MethodConfig
from seektune.models import vision
from seektune.models.layers import decoder_layers
from seektune.models.methods.spec import MethodSpec, PrepareContext


def prepare_full(model: nn.Module, cfg: MethodConfig, ctx: PrepareContext) -> nn.Module:
    model.requires_grad_(True)
    return model


def prepare_freeze(model: nn.Module, cfg: MethodConfig, ctx: PrepareContext) -> nn.Module:
    """Only the last N transformer layers (or all but a bottom fraction) + final norm, optionally head/embeddings."""
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
        # the final norm sits between the last layer and the head (in the language model of a vision-language one)
        norm = getattr(vision.language_model(model) if vision.is_vision_language(model.config)
                       else getattr(model, "model", None), "norm", None)
        if isinstance(norm, nn.Module):
            norm.requires_grad_(True)
    if cfg.freeze.train_head:
        model.get_output_embeddings().requires_grad_(True)
    if cfg.freeze.train_embeddings:
        model.get_input_embeddings().requires_grad_(True)
    return model


FULL = MethodSpec("full", prepare_full, artifact="full-model")
FREEZE = MethodSpec("freeze", prepare_freeze, artifact="full-model")
