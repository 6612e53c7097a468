"""What a plan needs to know about a model, from its config alone: parameters counted exactly on the meta device
(no weights are read or allocated), the widths activations scale with, and for MoE models which experts are
resident (all routed experts, on every process unless sharded) and which run per token (the top k)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seektune.method_config import MethodConfig
from seektune.models import methods


@dataclass(frozen=True)
class Experts:
    routed: int                 # experts per MoE layer, all resident
    per_token: int              # routed experts each token runs through
    shared: int                 # always-on experts
    intermediate: int           # width of one expert
    moe_layers: int
    routed_params: int          # all routed experts' weights


@dataclass(frozen=True)
class ModelShape:
    architecture: str
    params: int                 # every parameter once (tied embeddings once)
    trainable: int              # with the method applied
    layer_linear_params: int    # weights of the decoder layers' matmuls (what 4-bit QLoRA quantizes)
    layers: int
    hidden: int
    intermediate: int           # dense MLP width (MoE layers: see experts)
    vocab: int
    heads: int
    kv_heads: int
    head_dim: int
    experts: Experts | None
    frozen_layers: int = 0      # decoder layers with nothing trainable (freeze's lower layers)
    embeddings_train: bool = False   # gradients flow up from the input embeddings (full, tied heads)
    head_trains: bool = False        # the output head's weight has a gradient (full, freeze)
    adapter_dropout: bool = False    # LoRA layers drop their input: each keeps its own dropped copy and mask

    @property
    def active_params(self) -> int:
        """Parameters one token runs through (MoE: only its top-k routed experts)."""
        if self.experts is None:
            return self.params
        e = self.experts
        return self.params - e.routed_params + e.routed_params * e.per_token // max(e.routed, 1)


def _get(config, *names, default=None):
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def _experts(config, params_by_name: dict[str, int], layers: int) -> Experts | None:
    routed = _get(config, "n_routed_experts", "num_local_experts", "num_experts")
    if not routed:
        return None
    first_dense = _get(config, "first_k_dense_replace", default=0)
    every = _get(config, "moe_layer_freq", default=1) or 1
    moe_layers = sum(1 for i in range(first_dense, layers) if i % every == 0)
    routed_params = sum(n for name, n in params_by_name.items() if ".experts." in name and "shared" not in name)
    return Experts(routed=int(routed), per_token=int(_get(config, "num_experts_per_tok", default=1)),
                   shared=int(_get(config, "n_shared_experts", default=0) or 0),
                   intermediate=int(_get(config, "moe_intermediate_size", "intermediate_size")),
                   moe_layers=moe_layers, routed_params=routed_params)


def from_config(config, method: MethodConfig) -> ModelShape:
    """Build the model on the meta device, apply `method` to it, and count."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    counts = {name: p.numel() for name, p in model.named_parameters()}  # named_parameters skips tied copies
    layer_linear = sum(m.weight.numel() for name, m in model.named_modules()
                       if isinstance(m, torch.nn.Linear) and ".layers." in f".{name}")
    # transformers 5 keeps routed experts as fused 3-D parameters (experts.gate_up_proj), not Linear modules
    layer_linear += sum(n for name, n in counts.items()
                        if ".experts." in name and not name.endswith((".weight", ".bias")))
    text = getattr(config, "text_config", config)
    layers = int(text.num_hidden_layers)
    heads = int(text.num_attention_heads)
    hidden = int(text.hidden_size)
    prepared = methods.prepare(model, method)
    trainable = sum(p.numel() for p in prepared.parameters() if p.requires_grad)
    from seektune.models.layers import decoder_layers

    frozen = sum(1 for layer in decoder_layers(prepared) if not any(p.requires_grad for p in layer.parameters()))
    embeddings = prepared.get_input_embeddings()
    return ModelShape(
        architecture=type(model).__name__, params=sum(counts.values()), trainable=trainable,
        layer_linear_params=layer_linear, layers=layers, hidden=hidden,
        intermediate=int(_get(text, "intermediate_size", default=4 * hidden)), vocab=int(text.vocab_size),
        heads=heads, kv_heads=int(_get(text, "num_key_value_heads", default=heads)),
        head_dim=int(_get(text, "head_dim", default=hidden // heads) or hidden // heads),
        experts=_experts(text, counts, layers), frozen_layers=frozen,
        embeddings_train=any(p.requires_grad for p in embeddings.parameters()),
        head_trains=any(p.requires_grad for p in prepared.get_output_embeddings().parameters()),
        adapter_dropout=any(isinstance(m, torch.nn.Dropout) for name, m in prepared.named_modules()
                            if ".lora_dropout." in name))
