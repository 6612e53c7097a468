"""The bytes one training process holds at its peak, by part.

Counted for seektune's loop as it runs: weights stored in fp32 (QLoRA: the decoder layers' matmuls in 4 bits;
adapter runs under bf16 autocast: the frozen base in bf16, so autocast has nothing to cast),
fp32 gradients and two fp32 AdamW moments for what trains, and the autograd-saved activations of a decoder layer
per token, counted by recording the tensors saved for backward (saved_tensors_hooks) on a Llama layer through
the causal-LM objective: under bf16/fp16 autocast each matmul input is cast (q, k and v each separately) and
the cast of every weight is kept for backward. Logits exist only at supervised tokens (the selective head), and
with the chunked loss only one chunk of them at a time. Layers compiled by `train.compile` keep less than this
(inductor recomputes elementwise results): for them the estimate is an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seektune.plan.shape import ModelShape
from seektune.train.objectives.chunked_ce import chunk_rows

FP32 = 4
ADAMW_STATES = 2
# 4-bit NF4 plus its quantization constants: one 8-bit absmax per 64 weights and, with double quantization,
# one fp32 per 256 of those
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)


@dataclass(frozen=True)
class Workload:
    micro_batch_size: int
    max_length: int
    supervised_fraction: float      # answer tokens / all tokens
    compute_bytes: int              # 2 under bf16/fp16 autocast, 4 in fp32
    gradient_checkpointing: bool
    quantized_base: bool            # QLoRA
    adapter: bool                   # trainable weights live outside the base (LoRA-family, IA3, prompts)
    shards: int = 1                 # processes splitting weights, gradients and optimizer state (fsdp2)
    frozen_bytes: int = FP32        # 2 where the loop stores the frozen base in bf16 (train.frozen_dtype)
    chunked_loss: bool = True       # the head + cross-entropy in chunks (train.chunked_loss)
    on_cpu: bool = False            # chunks are smaller on a CPU

    @property
    def tokens(self) -> int:
        return self.micro_batch_size * self.max_length


@dataclass
class Estimate:
    """Every part of a step's memory. `forward` (activations, logits) and `gradients` never peak together: the
    loop sets gradients to None after each step, so they are allocated during backward as activations are
    freed. The peak holds what stays resident plus the larger of the two."""

    resident: dict[str, int] = field(default_factory=dict)
    forward: dict[str, int] = field(default_factory=dict)
    gradients: int = 0

    @property
    def forward_peaks(self) -> bool:
        return sum(self.forward.values()) >= self.gradients

    @property
    def parts(self) -> dict[str, int]:
        """The parts the peak holds."""
        return {**self.resident, **(self.forward if self.forward_peaks else {"gradients": self.gradients})}

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def _mlp_width(shape: ModelShape, moe_layer: bool) -> int:
    if moe_layer and shape.experts is not None:
        e = shape.experts
        return e.intermediate * (e.per_token + e.shared)
    return shape.intermediate


def layer_activation_bytes(shape: ModelShape, work: Workload, moe_layer: bool = False, frozen: bool = False) -> int:
    """Bytes one decoder layer saves for backward, per token. The coefficients are what the saved-tensor count
    found on a Llama layer (bf16 autocast, SDPA) for each case: adapters on every matmul, trainable weights, or
    a frozen layer that gradients only pass through (its matmuls keep no inputs, only their weights' casts)."""
    h, c, width = shape.hidden, work.compute_bytes, _mlp_width(shape, moe_layer)
    attention = shape.heads * shape.head_dim
    cast = c < FP32
    per_token = 5 * FP32 * h + 4 * c * attention + FP32 * shape.heads  # fp32 residual/norms; q, k, v, out, lse
    if moe_layer and shape.experts is not None:
        per_token += FP32 * shape.experts.routed   # router scores
    if frozen:
        return per_token + c * width               # the MLP product the down projection passes back through
    per_token += 4 * c * width                     # gate, up, activation outputs and the down input
    if work.adapter and shape.adapter_dropout:
        # each adapted matmul keeps its own dropped input (q, k, v, o, gate, up: width h; down: the MLP width)
        # and dropout's mask, a byte per number
        per_token += (6 * h + width) * (c + 1)
    elif work.adapter:
        # each adapter keeps its input for its own gradient: the two norm outputs, the attention output, the
        # down projection's input (under autocast peft's fp32 round trip is skipped, so q, k, v share one)
        per_token += 3 * c * h + c * width
    else:
        per_token += (2 if cast else 0) * c * h    # one cast input for attention, one for the MLP
    return per_token


def _activations(shape: ModelShape, work: Workload) -> int:
    moe = shape.experts.moe_layers if shape.experts else 0
    frozen = shape.frozen_layers
    frozen_bytes = layer_activation_bytes(shape, work, frozen=True) if shape.embeddings_train else 0
    per_token = (frozen * frozen_bytes + moe * layer_activation_bytes(shape, work, moe_layer=True) +
                 (shape.layers - moe - frozen) * layer_activation_bytes(shape, work))
    full = work.tokens * per_token
    if not work.gradient_checkpointing:
        return full
    # each layer keeps its input; one layer's activations are rebuilt at a time during backward
    return work.tokens * shape.layers * FP32 * shape.hidden + full // shape.layers


def estimate(shape: ModelShape, work: Workload) -> Estimate:
    """Peak bytes per process; weights, gradients and optimizer state divide by `work.shards`."""
    shards = work.shards
    adapter_params = shape.trainable if work.adapter else 0
    if work.quantized_base:
        base = shape.layer_linear_params * NF4_BYTES + (shape.params - shape.layer_linear_params) * FP32
    else:
        base = shape.params * (work.frozen_bytes if work.adapter else FP32)
    parts = {
        "weights": int((base + adapter_params * FP32) / shards),
        "optimizer": shape.trainable * ADAMW_STATES * FP32 // shards,
    }
    if work.compute_bytes < FP32 and work.frozen_bytes == FP32:
        # the compute-dtype copy of every matmul weight, saved for the backward pass; the head's too
        # (QLoRA's 4-bit matmuls dequantize on the fly and keep only the packed weights; a bf16 base is saved
        # as it is, and its activations are the same per token as the fp32 base's: both were counted)
        linear = (0 if work.quantized_base else shape.layer_linear_params) + shape.vocab * shape.hidden
        parts["weight casts"] = linear * work.compute_bytes // shards
    supervised = int(work.tokens * work.supervised_fraction)
    if work.chunked_loss:
        # the hidden states' fp32 gradient per answer token, one chunk's logits (compute dtype, fp32, the fp32
        # softmax gradient) and, when the head trains, its fp32 gradient, all computed in forward
        rows = min(supervised, chunk_rows(shape.vocab, work.on_cpu))
        logits = (supervised * shape.hidden * FP32 + rows * shape.vocab * (work.compute_bytes + 2 * FP32)
                  + (shape.vocab * shape.hidden * FP32 if shape.head_trains else 0))
    else:
        # compute-dtype logits, their fp32 copy and the fp32 log-softmax saved for backward
        logits = supervised * shape.vocab * (work.compute_bytes + 2 * FP32)
    forward = {"activations": _activations(shape, work), "logits": logits}
    if shards > 1:
        parts["gathered layer"] = _largest_layer_bytes(shape)  # fsdp2 unshards one layer at a time
    return Estimate(parts, forward, shape.trainable * FP32 // shards)


def _largest_layer_bytes(shape: ModelShape) -> int:
    per_layer = shape.layer_linear_params // max(shape.layers, 1)
    return 2 * per_layer * FP32   # the running layer and the prefetched next one
