"""torch.compile of the decoder layers for training steps on a CPU (`train.compile`).

Inductor fuses each layer's elementwise work (RMSNorm, RoPE, SwiGLU, LoRA's scale-and-add, autocast casts) into a
few C++ loops, and its partitioner recomputes cheap elementwise results in backward instead of keeping them. On a
CPU that runs bf16 matmuls fast (AMX) those elementwise passes were most of a LoRA step: measured in
bench/lora_levers.py. Only the layers are compiled: the embedding, the selective head and the chunked loss stay
eager, so the number of answer tokens never changes a compiled shape, and shapes are dynamic from the start, so
rows of another width do not recompile. Evaluation (no gradients) runs the layers eagerly: compiling a second,
inference graph would cost more than it saves on the few evaluation batches. `train.compile_memory_budget` is
torch's activation memory budget for the partitioner: 0.5 (the default) took issue 15's job to 0.81x the peak RSS
of 1 for 12% of the speed (bench/README.md).

`auto` compiles where it pays: a CPU, one process, a model of at least AUTO_MIN_PARAMS parameters trained for at
least AUTO_MIN_STEPS steps (the first compile takes about half a minute; later runs reuse inductor's cache), and a
C++ compiler. GPUs keep eager: not measured there yet.
"""

from __future__ import annotations

import shutil

import torch
from torch import nn

from seektune.config import Config
from seektune.errors import ConfigError
from seektune.models.layers import decoder_layers
from seektune.models.methods import get as method_spec

AUTO_MIN_PARAMS = 100_000_000
AUTO_MIN_STEPS = 30
# methods whose layers are plain Linear + peft LoRA / frozen / trainable weights (the compiled, tested set)
COMPILABLE_METHODS = ("lora", "full", "freeze")


def _blocker(cfg: Config, device: torch.device, processes: int, vision: bool) -> str | None:
    """Why the layers cannot be compiled in this run, or None."""
    if device.type != "cpu":
        return f"it runs on {device.type} (compiling is measured and tested on CPUs only)"
    if processes > 1 or cfg.train.sharding != "none":
        return "it runs in several processes"
    if cfg.train.gradient_checkpointing:
        return "train.gradient_checkpointing is on (the compiled layers recompute what they do not keep)"
    if cfg.method.name not in COMPILABLE_METHODS:
        return f"method.name is {cfg.method.name} (compiled: {', '.join(COMPILABLE_METHODS)})"
    if cfg.objective.name != "causal_lm":
        return f"objective.name is {cfg.objective.name} (compiled: causal_lm)"
    if vision:
        return "the model is a vision-language model"
    if method_spec(cfg.method.name).quantization is not None or cfg.method.qat.bits is not None:
        return "the base is quantized"
    if not (shutil.which("g++") or shutil.which("c++")):
        return "no C++ compiler is installed (inductor needs g++: apt-get install g++)"
    return None


def should_compile(cfg: Config, device: torch.device, processes: int, vision: bool, params: int,
                   total_steps: int) -> tuple[bool, str]:
    """(compile?, the reason in words, for the summary line)."""
    blocker = _blocker(cfg, device, processes, vision)
    if cfg.train.compile is False:
        return False, "off"
    if cfg.train.compile is True:
        if blocker:
            raise ConfigError(f"train.compile: true, but {blocker}; use train.compile=auto or false")
        return True, "on"
    if blocker:
        return False, f"off ({blocker})"
    if params < AUTO_MIN_PARAMS or total_steps < AUTO_MIN_STEPS:
        return False, (f"off (auto compiles models of {AUTO_MIN_PARAMS // 10**6}M+ parameters trained "
                       f"{AUTO_MIN_STEPS}+ steps; train.compile=true to force)")
    return True, "on (auto)"


def compile_layers(model: nn.Module, memory_budget: float = 1.0) -> int:
    """Compile every decoder layer for steps that build a backward graph; returns the number compiled. The
    budget is read by the partitioner when the first step compiles, so it is set for the process."""
    import torch._functorch.config as functorch_config

    functorch_config.activation_memory_budget = memory_budget
    layers = decoder_layers(model)
    for layer in layers:
        compiled = torch.compile(layer._call_impl, dynamic=True)
        layer._compiled_call_impl = _when_training(compiled, layer._call_impl)
    return len(layers)


def _when_training(compiled, eager):
    def call(*args, **kwargs):
        return (compiled if torch.is_grad_enabled() else eager)(*args, **kwargs)
    return call
