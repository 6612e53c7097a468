"""Optimizer parameter groups: weight decay, layer-wise learning-rate decay, embedding/head rates, LoRA+.

A parameter's learning rate is `learning_rate x multiplier`, with the multiplier from where it lives:
  transformer layer i of N   layer_lr_decay ** (N - 1 - i)   (lower layers learn slower)
  input embeddings           embedding_learning_rate, else the rate below the lowest layer (decay ** N)
  output head                head_learning_rate, else learning_rate
  anything else              learning_rate (final norm, virtual-token encoders...)
and the method's own rule multiplies on top (LoRA+: lora_B matrices x `loraplus_lr_ratio`). Matrices get weight decay, vectors do not.
The scheduler scales every group by the same factor, so these ratios hold through warmup and decay.
"""

from __future__ import annotations

from torch import nn

from seektune.config import Config
from seektune.models import methods
from seektune.models.layers import decoder_layers


def _owners(model: nn.Module) -> tuple[dict[int, int], int, set[int], set[int]]:
    """(parameter id -> layer index, number of layers, embedding parameter ids, head parameter ids)."""
    layers = decoder_layers(model)
    layer_of = {id(p): i for i, layer in enumerate(layers) for p in layer.parameters()}
    embeddings = {id(p) for p in model.get_input_embeddings().parameters()}
    head = model.get_output_embeddings()
    head_ids = {id(p) for p in head.parameters()} if head is not None else set()
    return layer_of, len(layers), embeddings, head_ids


def build(model: nn.Module, cfg: Config) -> list[dict]:
    t, lr = cfg.train, cfg.train.learning_rate
    layer_of, n_layers, embeddings, head = _owners(model)
    multiplier = methods.get(cfg.method.name).lr_multiplier
    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = id(p)
        if key in head:  # checked first: a tied head is also the embedding, and trains at the head's rate
            rate = t.head_learning_rate or lr
        elif key in embeddings:
            rate = t.embedding_learning_rate or lr * t.layer_lr_decay ** n_layers
        elif key in layer_of:
            rate = lr * t.layer_lr_decay ** (n_layers - 1 - layer_of[key])
        else:
            rate = lr
        if multiplier is not None:
            rate *= multiplier(name, cfg.method)
        decay = t.weight_decay if p.ndim >= 2 else 0.0
        groups.setdefault((rate, decay), []).append(p)
    return [{"params": params, "lr": rate, "weight_decay": decay} for (rate, decay), params in sorted(groups.items())]


def own(params: list, cfg: Config) -> list[dict]:
    """Groups for an objective's own weights (CLIP's projections and temperature): the base learning rate,
    weight decay on matrices only."""
    groups = [{"params": [p for p in params if p.ndim >= 2], "lr": cfg.train.learning_rate,
               "weight_decay": cfg.train.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "lr": cfg.train.learning_rate, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
