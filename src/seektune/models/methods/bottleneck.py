"""Bottleneck adapters (Houlsby et al. 2019): down-project, non-linearity, up-project, added to the output of the
attention block and/or the MLP block of every transformer layer. peft 0.21 has no such adapter, so it lives here.

The up-projection starts at zero, so an untrained adapter is the identity and training starts from the base
model's behaviour. Adapters hang off each decoder layer as child modules (`bottleneck_attention`,
`bottleneck_mlp`) and act through forward hooks on `self_attn` / `mlp`, so the base weights and their names
are untouched and activation checkpointing (per layer) recomputes them too.

Saved format, a directory (version 1):
  bottleneck_config.json         {"format": "seektune-bottleneck", "version": 1, "base_model_name_or_path",
                                  "hidden_size", "num_layers", "dim", "placement", "activation", "scale", "dropout"}
  bottleneck_model.safetensors   tensors "layers.{i}.{attention|mlp}.{down|up}.{weight|bias}"
Load it with `load(model, directory)` on the base model named in the config (seektune's artifact kind
`bottleneck-adapter` does this). The adapter is non-linear, so it
cannot be merged into the base weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from seektune.atomic import write_json
from seektune.errors import ConfigError, ModelError
from seektune.method_config import BottleneckConfig
from seektune.models.layers import decoder_layers
from seektune.models.methods.spec import MethodSpec

CONFIG_FILE, WEIGHTS_FILE, FORMAT = "bottleneck_config.json", "bottleneck_model.safetensors", "seektune-bottleneck"
_BLOCKS = {"attention": "self_attn", "mlp": "mlp"}
_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


class Bottleneck(nn.Module):
    def __init__(self, hidden: int, dim: int, activation: str, scale: float, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.down = nn.Linear(hidden, dim)
        self.act = _ACTIVATIONS[activation]()
        self.up = nn.Linear(dim, hidden)
        self.scale = scale
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.scale * self.up(self.act(self.down(self.dropout(hidden))))


def _hook(adapter: Bottleneck):
    def apply(_module, _inputs, output):
        if isinstance(output, tuple):  # attention returns (hidden, weights)
            return (adapter(output[0]), *output[1:])
        return adapter(output)
    return apply


def attach(model: nn.Module, cfg: BottleneckConfig) -> nn.Module:
    """Freeze the base and add one trainable adapter per (layer, placement)."""
    hidden = model.config.hidden_size
    model.requires_grad_(False)
    for layer in decoder_layers(model):
        for place in cfg.placement:
            block = getattr(layer, _BLOCKS[place], None)
            if block is None:
                raise ConfigError(f"method.bottleneck.placement: this model's layers have no '{_BLOCKS[place]}' "
                                  f"block ({type(layer).__name__}); supported: Llama/Qwen/Mistral/DeepSeek layouts")
            dtype = next(block.parameters()).dtype
            adapter = Bottleneck(hidden, cfg.dim, cfg.activation, cfg.scale, cfg.dropout).to(dtype)
            layer.add_module(f"bottleneck_{place}", adapter)
            block.register_forward_hook(_hook(adapter))
    return model


def _adapters(model: nn.Module) -> dict[str, Bottleneck]:
    found = {}
    for i, layer in enumerate(decoder_layers(model)):
        for place in _BLOCKS:
            adapter = getattr(layer, f"bottleneck_{place}", None)
            if isinstance(adapter, Bottleneck):
                found[f"layers.{i}.{place}"] = adapter
    return found


def save(model: nn.Module, cfg: BottleneckConfig, directory: Path, base_model: str) -> None:
    tensors = {f"{key}.{name}": p.detach().contiguous().cpu()
               for key, adapter in _adapters(model).items() for name, p in adapter.named_parameters()}
    meta = {"format": FORMAT, "version": 1, "base_model_name_or_path": base_model,
            "hidden_size": model.config.hidden_size, "num_layers": model.config.num_hidden_layers,
            **cfg.model_dump()}
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": FORMAT})
    write_json(directory / CONFIG_FILE, meta)


def is_bottleneck_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file()


def read_config(directory: Path) -> dict:
    meta = json.loads((directory / CONFIG_FILE).read_text())
    if meta.get("format") != FORMAT or meta.get("version") != 1:
        raise ModelError(f"{directory / CONFIG_FILE}: not a version-1 seektune bottleneck adapter")
    return meta


def load(model: nn.Module, directory: str | Path) -> nn.Module:
    """Attach the saved adapters to `model` (the base named in the config) and load their weights."""
    directory = Path(directory)
    meta = read_config(directory)
    if meta["hidden_size"] != model.config.hidden_size or meta["num_layers"] != model.config.num_hidden_layers:
        raise ModelError(f"{directory}: adapter was trained for hidden_size={meta['hidden_size']}, "
                         f"{meta['num_layers']} layers; this model differs")
    cfg = BottleneckConfig(**{k: meta[k] for k in BottleneckConfig.model_fields})
    attach(model, cfg)
    tensors = load_file(str(directory / WEIGHTS_FILE))
    for key, adapter in _adapters(model).items():
        adapter.load_state_dict({n.removeprefix(key + "."): t for n, t in tensors.items() if n.startswith(key + ".")})
    return model


SPEC = MethodSpec(
    "bottleneck", lambda model, cfg, ctx: attach(model, cfg.bottleneck), artifact="bottleneck-adapter",
    save=lambda model, cfg, directory, base: save(model, cfg.bottleneck, directory, base))
