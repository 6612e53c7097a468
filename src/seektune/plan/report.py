"""A plan as lines a user reads: the model, each part of the peak, the verdict, the change that fits."""

from __future__ import annotations

from seektune.plan.planner import Option, Plan, usable_bytes


def _gib(n: float) -> str:
    return f"{n / 2**30:8.2f} GiB"


def _option_lines(option: Option) -> list[str]:
    est = option.estimate
    lines = [f"  {name:15s}{_gib(size)}" for name, size in est.resident.items()]
    # forward tensors are freed as backward allocates the gradients: only the larger side counts in the peak
    later = "  (freed as gradients are allocated)" if not est.forward_peaks else ""
    lines += [f"  {name:15s}{_gib(size)}{later}" for name, size in est.forward.items()]
    freed = "  (allocated as activations are freed)" if est.forward_peaks else ""
    lines.append(f"  {'gradients':15s}{_gib(est.gradients)}{freed}")
    return lines + [f"  {'peak':15s}{_gib(est.total)}"]


def lines(plan: Plan, config_line: str) -> list[str]:
    shape, hw = plan.shape, plan.hardware
    out = [f"model: {shape.architecture}, {shape.params / 1e9:.2f} B parameters "
           f"({shape.trainable / 1e6:.2f} M trainable), {shape.layers} layers",
           f"run: {config_line}"]
    if shape.experts is not None:
        e = shape.experts
        out.append(f"experts: {e.routed} routed per MoE layer ({e.moe_layers} layers) all resident, "
                   f"{e.per_token} routed + {e.shared} shared run per token; "
                   f"{shape.active_params / 1e9:.2f} B parameters active per token")
    out.append(f"hardware: {hw.describe()}, {_gib(usable_bytes(hw)).strip()} usable per device")
    out.append("per process:")
    out += _option_lines(plan.configured)
    if plan.configured.fits:
        out.append("fits")
        return out
    out.append("does not fit")
    if plan.recommended is None:
        out.append("nothing tried fits (checkpointing, micro-batch 1, sharding over the devices, LoRA, QLoRA): "
                   "use more or larger devices, or a shorter data.max_length")
        return out
    out.append("fits with: " + " ".join(plan.recommended.overrides))
    return out + _option_lines(plan.recommended)
