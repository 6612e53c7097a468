"""The method registry: every tuning method is one MethodSpec, looked up here by `method.name` and nowhere else.

Adding a method: one module in this package that defines its prepare function (and, if it needs them, its
save function, loop hook or learning-rate rule) and a MethodSpec; one entry in METHODS below; its settings
section and name in `seektune.method_config`; one row in tests/e2e/test_methods_matrix.py.
"""

from __future__ import annotations

from torch import nn

from seektune.errors import ConfigError
from seektune.method_config import MethodConfig
from seektune.models import vision
from seektune.models.methods import bottleneck, peft_family, virtual_tokens, whole_model
from seektune.models.methods.spec import MethodSpec, PrepareContext, StepHook

METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in (
    whole_model.FULL, whole_model.FREEZE, peft_family.LORA, peft_family.QLORA, peft_family.ADALORA,
    peft_family.IA3, bottleneck.SPEC, virtual_tokens.PROMPT, virtual_tokens.PREFIX, virtual_tokens.P_TUNING,
)}

__all__ = ["METHODS", "MethodSpec", "PrepareContext", "StepHook", "frozen_in_bf16", "get", "prepare"]


def get(name: str) -> MethodSpec:
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"method.name: unknown method {name!r}; one of {', '.join(METHODS)}") from None


def prepare(model: nn.Module, cfg: MethodConfig, total_steps: int = 1, tokenizer_path: str = "") -> nn.Module:
    """Set what trains. `total_steps` feeds AdaLoRA's schedule; `tokenizer_path` prompt-tuning text init. In a
    vision-language model the method acts on the language model; `method.vision` says whether the projector
    and the vision tower train too (peft methods through their config, whole-model methods here)."""
    spec = get(cfg.name)
    vision.check_method(model.config, cfg.name)
    prepared = spec.prepare(model, cfg, PrepareContext(total_steps, tokenizer_path))
    if vision.is_vision_language(model.config) and not spec.adapter:
        vision.set_trainable_parts(prepared, cfg.vision.tower, cfg.vision.projector, cfg.vision.language_model)
    return prepared


def frozen_in_bf16(method: MethodConfig, frozen_dtype: str, precision: str, sharded: bool) -> bool:
    """Whether the loop stores the frozen base in bf16 (`train.frozen_dtype: auto`): under bf16 autocast, when
    the run saves only an adapter (a whole-model artifact would save the rounded base), the base is not already
    quantized or fake-quantized, and fsdp2 (which all-gathers one dtype per layer) does not shard it. The planner
    asks the same question."""
    spec = get(method.name)
    return (frozen_dtype == "auto" and precision == "bf16" and spec.adapter
            and spec.quantization is None and method.qat.bits is None and not sharded)
