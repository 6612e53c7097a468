"""peft-backed methods: LoRA and its variants (DoRA, rsLoRA, PiSSA/OLoRA init, per-module rank, hybrid), QLoRA,
AdaLoRA, IA3 and the virtual-token methods (prompt tuning, prefix tuning, P-tuning).

Each function turns our config section into the peft config and wraps the model, so every artifact is a
standard peft adapter directory. Errors from peft come back as ConfigErrors naming our key.
"""

from __future__ import annotations

import re
import warnings

from torch import nn

from seektune.errors import ConfigError
from seektune.method_config import MethodConfig
from seektune.models.deepseek import moe_rewrite_disabled, preset

_INIT = {"default": True, "gaussian": "gaussian", "pissa": "pissa", "olora": "olora"}


def _targets(model: nn.Module, cfg: MethodConfig) -> tuple[str | list[str], list[str], bool]:
    """(target_modules, target_parameters, disable peft's MoE rewrite) for the lora section."""
    lora = cfg.lora
    targets, params = lora.target_modules, list(lora.target_parameters)
    named = preset(targets)
    if named is None:
        return targets, params, False
    if getattr(model.config, "model_type", "") not in ("deepseek_v2", "deepseek_v3"):
        raise ConfigError(f"method.lora.target_modules: preset '{targets}' is for DeepSeek-V2/V3 models, "
                          f"not {getattr(model.config, 'model_type', type(model).__name__)}")
    return named.target_regex() or [], params + list(named.parameters), named.needs_rewrite_disabled


def _hybrid_layers(model: nn.Module, full_layers: int) -> tuple[list[str], str]:
    """(layer module names trained fully, a regex that keeps LoRA out of them) for `lora.full_layers`."""
    from seektune.models.methods import decoder_layers

    layers = decoder_layers(model)
    if full_layers >= len(layers):
        raise ConfigError(f"method.lora.full_layers={full_layers} leaves no layer for LoRA "
                          f"(the model has {len(layers)}); use method.name=full or freeze instead")
    prefix = next(n for n, m in model.named_modules() if m is layers)
    full = [str(i) for i in range(len(layers) - full_layers, len(layers))]
    return [f"{prefix}.{i}" for i in full], rf"{re.escape(prefix)}\.({'|'.join(full)})\..*"


def _wrap(model: nn.Module, peft_cfg, section: str, rewrite_disabled: bool = False) -> nn.Module:
    """get_peft_model, with peft's errors and its 'pattern matched nothing' warnings turned into ConfigErrors."""
    from peft import get_peft_model

    try:
        with moe_rewrite_disabled(rewrite_disabled), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            wrapped = get_peft_model(model, peft_cfg)
        for w in caught:
            unmatched = re.search(r"following (rank|alpha)_pattern keys did not match.*?: (\[.*\])", str(w.message))
            if unmatched:
                raise ConfigError(f"method.lora.{unmatched.group(1)}_pattern: {unmatched.group(2)} matched no adapted "
                                  "module; keys are regexes for the end of a module name, e.g. 'self_attn.*', "
                                  "'mlp.*' or 'q_proj'")
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return wrapped
    except ValueError as exc:
        if "lora_dropout" in str(exc):
            raise ConfigError(
                f"method.{section}.lora_dropout must be 0 here: the targets include fused MoE expert parameters "
                "and peft has no dropout for those; or use target_modules: deepseek-attention"
            ) from None
        raise ConfigError(f"method.{section}: {exc}") from None


def lora(model: nn.Module, cfg: MethodConfig) -> nn.Module:
    """LoRA, DoRA, rsLoRA, PiSSA/OLoRA init, rank/alpha patterns, and the hybrid (last layers trained fully)."""
    from peft import LoraConfig

    c = cfg.lora
    targets, params, rewrite_disabled = _targets(model, cfg)
    full_modules, excluded = _hybrid_layers(model, c.full_layers) if c.full_layers else ([], None)
    peft_cfg = LoraConfig(
        r=c.r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
        target_modules=targets or None, target_parameters=params or None,
        modules_to_save=(c.modules_to_save + full_modules) or None,
        exclude_modules=excluded,
        use_dora=c.use_dora, use_rslora=c.use_rslora, init_lora_weights=_INIT[c.init],
        rank_pattern=dict(c.rank_pattern), alpha_pattern=dict(c.alpha_pattern), task_type="CAUSAL_LM",
    )
    return _wrap(model, peft_cfg, "lora", rewrite_disabled)


def adalora(model: nn.Module, cfg: MethodConfig, total_steps: int) -> nn.Module:
    """AdaLoRA: SVD-shaped LoRA whose rank budget the loop reallocates by sensitivity (see train/method_hooks)."""
    from peft import AdaLoraConfig

    a, c = cfg.adalora, cfg.lora
    targets, params, rewrite_disabled = _targets(model, cfg)
    if params:
        raise ConfigError("method.adalora: peft's AdaLoRA cannot adapt fused parameters (target_parameters); "
                          "use module targets such as deepseek-attention")
    tinit, tfinal = int(a.tinit * total_steps), max(1, int(a.tfinal * total_steps))  # >= 1: the budget is fixed
    if total_steps - tinit - tfinal < 1:
        raise ConfigError(f"method.adalora: {total_steps} steps leave none between tinit and tfinal; "
                          "train longer or lower tinit/tfinal")
    peft_cfg = AdaLoraConfig(
        init_r=a.init_r, target_r=a.target_r, tinit=tinit, tfinal=tfinal, deltaT=a.delta_t, beta1=a.beta1,
        beta2=a.beta2, orth_reg_weight=a.orth_reg_weight, total_step=total_steps, lora_alpha=c.lora_alpha,
        lora_dropout=c.lora_dropout, target_modules=targets, modules_to_save=c.modules_to_save or None,
        task_type="CAUSAL_LM",
    )
    return _wrap(model, peft_cfg, "adalora", rewrite_disabled)


def ia3(model: nn.Module, cfg: MethodConfig) -> nn.Module:
    from peft import IA3Config

    c = cfg.ia3
    if (c.target_modules is None) != (c.feedforward_modules is None):
        raise ConfigError("method.ia3: set both target_modules and feedforward_modules, or neither")
    peft_cfg = IA3Config(target_modules=c.target_modules, feedforward_modules=c.feedforward_modules,
                         task_type="CAUSAL_LM")
    return _wrap(model, peft_cfg, "ia3")


def virtual_tokens(model: nn.Module, cfg: MethodConfig, tokenizer_path: str) -> nn.Module:
    """Prompt tuning, prefix tuning and P-tuning: learned virtual tokens in front of every input."""
    from peft import PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig

    c = cfg.prompt
    if cfg.name == "prompt":
        init = {"prompt_tuning_init": "TEXT", "prompt_tuning_init_text": c.init_text,
                "tokenizer_name_or_path": tokenizer_path} if c.init_text else {"prompt_tuning_init": "RANDOM"}
        peft_cfg = PromptTuningConfig(num_virtual_tokens=c.num_virtual_tokens, task_type="CAUSAL_LM", **init)
    elif cfg.name == "prefix":
        peft_cfg = PrefixTuningConfig(num_virtual_tokens=c.num_virtual_tokens, prefix_projection=c.prefix_projection,
                                      encoder_hidden_size=c.encoder_hidden_size, task_type="CAUSAL_LM")
    else:
        peft_cfg = PromptEncoderConfig(num_virtual_tokens=c.num_virtual_tokens,
                                       encoder_hidden_size=c.encoder_hidden_size,
                                       encoder_reparameterization_type=c.encoder.upper(), task_type="CAUSAL_LM")
    return _wrap(model, peft_cfg, "prompt")


def quantization_config(cfg: MethodConfig):
    """bitsandbytes storage for QLoRA's frozen base (runs on CUDA, and on CPU since bitsandbytes 0.48)."""
    import torch
    from transformers import BitsAndBytesConfig

    q = cfg.qlora
    if q.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}[q.compute_dtype]
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=q.quant_type,
                              bnb_4bit_use_double_quant=q.double_quant, bnb_4bit_compute_dtype=dtype)
