"""peft-backed methods that add weights beside the base: LoRA and its variants (DoRA, rsLoRA, PiSSA/OLoRA init,
per-module rank, hybrid), QLoRA, AdaLoRA (with the loop hook that reallocates its rank budget) and IA3.

Each function turns our config section into the peft config and wraps the model, so every artifact is a
standard peft adapter directory. Errors from peft come back as ConfigErrors naming our key.
"""

from __future__ import annotations

import contextlib
import re
import sys
import warnings

import torch
from torch import nn

from seektune.errors import ConfigError
from seektune.method_config import MethodConfig
from seektune.models.deepseek import moe_rewrite_disabled, preset
from seektune.models import vision
from seektune.models.layers import decoder_layers
from seektune.models.methods.spec import MethodSpec, PrepareContext, StepHook

_INIT = {"default": True, "gaussian": "gaussian", "pissa": "pissa", "olora": "olora"}


def _rewrite_disabled(cfg: MethodConfig) -> bool:
    """The targets are a DeepSeek preset that adapts the dense MLP or shared experts (see models/deepseek.py)."""
    named = preset(cfg.lora.target_modules)
    return named is not None and named.needs_rewrite_disabled


def _targets(model: nn.Module, cfg: MethodConfig) -> tuple[str | list[str], list[str]]:
    """(target_modules, target_parameters) for the lora section, DeepSeek presets expanded."""
    lora = cfg.lora
    targets, params = lora.target_modules, list(lora.target_parameters)
    named = preset(targets)
    if named is None:
        return targets, params
    if getattr(model.config, "model_type", "") not in ("deepseek_v2", "deepseek_v3"):
        raise ConfigError(f"method.lora.target_modules: preset '{targets}' is for DeepSeek-V2/V3 models, "
                          f"not {getattr(model.config, 'model_type', type(model).__name__)}")
    return named.target_regex() or [], params + list(named.parameters)


def _hybrid_layers(model: nn.Module, full_layers: int) -> tuple[list[str], str]:
    """(layer module names trained fully, a regex that keeps LoRA out of them) for `lora.full_layers`."""
    layers = decoder_layers(model)
    if full_layers >= len(layers):
        raise ConfigError(f"method.lora.full_layers={full_layers} leaves no layer for LoRA "
                          f"(the model has {len(layers)}); use method.name=full or freeze instead")
    prefix = next(n for n, m in model.named_modules() if m is layers)
    full = [str(i) for i in range(len(layers) - full_layers, len(layers))]
    return [f"{prefix}.{i}" for i in full], rf"{re.escape(prefix)}\.({'|'.join(full)})\..*"


@contextlib.contextmanager
def _no_gptqmodel_probe():
    """peft asks of every layer it wraps whether it is a GPT-QModel quantized layer, importing gptqmodel to ask
    (and datasets, pyarrow and pandas behind it: ~290 MB of RSS and seconds in a training process). No layer can
    be one while gptqmodel is not imported (its layers exist only once a model was loaded through it), so then
    the question is answered 'no' without the import. The names are patched only where peft has them."""
    if "gptqmodel" in sys.modules:
        yield
        return
    import importlib

    patched = []
    for name in ("peft.utils.other", "peft.tuners.lora.gptq", "peft.tuners.lora.awq"):
        module = importlib.import_module(name)
        if hasattr(module, "is_gptqmodel_available"):
            patched.append((module, module.is_gptqmodel_available))
            module.is_gptqmodel_available = lambda: False
    try:
        yield
    finally:
        for module, original in patched:
            module.is_gptqmodel_available = original


def wrap(model: nn.Module, peft_cfg, section: str, rewrite_disabled: bool = False) -> nn.Module:
    """get_peft_model, with peft's errors and its 'pattern matched nothing' warnings turned into ConfigErrors."""
    from peft import get_peft_model

    try:
        with (moe_rewrite_disabled(rewrite_disabled), _no_gptqmodel_probe(),
              warnings.catch_warnings(record=True) as caught):
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


def task_type(model: nn.Module) -> str:
    """peft's task for the model's head: a reward model (one-label sequence classification) is SEQ_CLS, so peft
    trains and saves its score head beside the adapter."""
    return "SEQ_CLS" if type(model).__name__.endswith("ForSequenceClassification") else "CAUSAL_LM"


def _vision_parts(model: nn.Module, cfg: MethodConfig) -> tuple[list[str], list[str]]:
    """(exclude regexes, modules to save) for a vision-language model's tower and projector; none for text."""
    if not vision.is_vision_language(model.config):
        return [], []
    exclude, save = vision.peft_parts(model, cfg.vision.tower, cfg.vision.projector)
    return [exclude] if exclude else [], save


def _any_of(patterns: list[str]) -> str | None:
    return "|".join(f"(?:{p})" for p in patterns) if patterns else None


def lora(model: nn.Module, cfg: MethodConfig, ctx: PrepareContext) -> nn.Module:
    """LoRA, DoRA, rsLoRA, PiSSA/OLoRA init, rank/alpha patterns, and the hybrid (last layers trained fully)."""
    from peft import LoraConfig

    c = cfg.lora
    targets, params = _targets(model, cfg)
    full_modules, excluded = _hybrid_layers(model, c.full_layers) if c.full_layers else ([], None)
    vision_excluded, vision_saved = _vision_parts(model, cfg)
    peft_cfg = LoraConfig(
        r=c.r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
        target_modules=targets or None, target_parameters=params or None,
        modules_to_save=(c.modules_to_save + full_modules + vision_saved) or None,
        exclude_modules=_any_of(([excluded] if excluded else []) + vision_excluded),
        use_dora=c.use_dora, use_rslora=c.use_rslora, init_lora_weights=_INIT[c.init],
        rank_pattern=dict(c.rank_pattern), alpha_pattern=dict(c.alpha_pattern), task_type=task_type(model),
    )
    return wrap(model, peft_cfg, "lora", _rewrite_disabled(cfg))


def adalora(model: nn.Module, cfg: MethodConfig, ctx: PrepareContext) -> nn.Module:
    """AdaLoRA: SVD-shaped LoRA whose rank budget the loop reallocates by sensitivity (AdaLoraHook)."""
    from peft import AdaLoraConfig

    a, c, total_steps = cfg.adalora, cfg.lora, ctx.total_steps
    targets, params = _targets(model, cfg)
    if params:
        raise ConfigError("method.adalora: peft's AdaLoRA cannot adapt fused parameters (target_parameters); "
                          "use module targets such as deepseek-attention")
    tinit, tfinal = int(a.tinit * total_steps), max(1, int(a.tfinal * total_steps))  # >= 1: the budget is fixed
    if total_steps - tinit - tfinal < 1:
        raise ConfigError(f"method.adalora: {total_steps} steps leave none between tinit and tfinal; "
                          "train longer or lower tinit/tfinal")
    vision_excluded, vision_saved = _vision_parts(model, cfg)
    peft_cfg = AdaLoraConfig(
        init_r=a.init_r, target_r=a.target_r, tinit=tinit, tfinal=tfinal, deltaT=a.delta_t, beta1=a.beta1,
        beta2=a.beta2, orth_reg_weight=a.orth_reg_weight, total_step=total_steps, lora_alpha=c.lora_alpha,
        lora_dropout=c.lora_dropout, target_modules=targets, modules_to_save=(c.modules_to_save + vision_saved) or None,
        exclude_modules=_any_of(vision_excluded),
        task_type=task_type(model),
    )
    return wrap(model, peft_cfg, "adalora", _rewrite_disabled(cfg))


def ia3(model: nn.Module, cfg: MethodConfig, ctx: PrepareContext) -> nn.Module:
    from peft import IA3Config

    c = cfg.ia3
    if (c.target_modules is None) != (c.feedforward_modules is None):
        raise ConfigError("method.ia3: set both target_modules and feedforward_modules, or neither")
    peft_cfg = IA3Config(target_modules=c.target_modules, feedforward_modules=c.feedforward_modules,
                         task_type=task_type(model))
    return wrap(model, peft_cfg, "ia3")


def quantization_config(cfg: MethodConfig):
    """bitsandbytes storage for QLoRA's frozen base (runs on CUDA, and on CPU since bitsandbytes 0.48)."""
    from transformers import BitsAndBytesConfig

    q = cfg.qlora
    if q.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}[q.compute_dtype]
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=q.quant_type,
                              bnb_4bit_use_double_quant=q.double_quant, bnb_4bit_compute_dtype=dtype)


class AdaLoraHook(StepHook):
    """AdaLoRA in the loop. peft's RankAllocator scores every singular value by its sensitivity (|w * grad|,
    smoothed) and masks the least important ones until the average rank reaches target_r. It must see the
    gradients, so it runs after optimizer.step() and before zero_grad(); its orthogonality regulariser keeps P
    and Q near-orthogonal so masking a singular value is a clean rank cut. peft applies that regulariser only
    when the model computes the loss itself, and the loop computes its own loss, so it is added here."""

    name = "adalora"

    def __init__(self, peft_model: nn.Module, cfg: MethodConfig | None = None):
        self.tuner = peft_model.base_model  # AdaLoraModel: update_and_allocate, rankallocator, peft_config
        self.adapter = self.tuner.trainable_adapter_name
        self.weight = self.tuner.peft_config[self.adapter].orth_reg_weight
        self.factors = [("lora_A" in n, p) for n, p in self.tuner.model.named_parameters()
                        if ("lora_A" in n or "lora_B" in n) and self.adapter in n]

    def penalty(self) -> torch.Tensor | None:
        if not self.weight or not self.factors:
            return None
        total = 0.0
        for is_a, p in self.factors:  # P (lora_A, r x in) rows and Q (lora_B, out x r) columns near-orthonormal
            cov = p @ p.T if is_a else p.T @ p
            total = total + torch.linalg.matrix_norm(cov - torch.eye(cov.shape[0], device=p.device, dtype=p.dtype))
        return self.weight * total / len(self.factors)

    def after_optimizer_step(self, step: int) -> None:
        # peft counts steps from 0 (its schedule compares global_step with tinit and total_step - tfinal)
        self.tuner.update_and_allocate(step - 1)

    def state_dict(self) -> dict:
        allocator = self.tuner.rankallocator
        return {"ipt": allocator.ipt, "exp_avg_ipt": allocator.exp_avg_ipt, "exp_avg_unc": allocator.exp_avg_unc,
                "rank_pattern": self.tuner.peft_config[self.adapter].rank_pattern}

    def load_state_dict(self, state: dict) -> None:
        allocator = self.tuner.rankallocator
        allocator.ipt, allocator.exp_avg_ipt, allocator.exp_avg_unc = state["ipt"], state["exp_avg_ipt"], \
            state["exp_avg_unc"]
        self.tuner.peft_config[self.adapter].rank_pattern = state["rank_pattern"]

    def summary(self) -> dict:
        """Ranks left per adapted matrix after reallocation (the budget's outcome)."""
        pattern = self.tuner.peft_config[self.adapter].rank_pattern or {}
        return {"adalora_final_ranks": {name: int(sum(mask)) for name, mask in pattern.items()}}


def _loraplus(name: str, cfg: MethodConfig) -> float:
    """LoRA+: lora_B matrices learn `loraplus_lr_ratio` times faster (0 = off)."""
    ratio = cfg.lora.loraplus_lr_ratio
    return ratio if ratio and ".lora_B." in name else 1.0


LORA = MethodSpec("lora", lora, mergeable=True, lr_multiplier=_loraplus, moe_rewrite_disabled=_rewrite_disabled)
QLORA = MethodSpec("qlora", lora, mergeable=True, quantization=quantization_config, lr_multiplier=_loraplus,
                   moe_rewrite_disabled=_rewrite_disabled)  # LoRA on a 4/8-bit bitsandbytes base
ADALORA = MethodSpec("adalora", adalora, mergeable=True, hooks=AdaLoraHook, moe_rewrite_disabled=_rewrite_disabled)
IA3 = MethodSpec("ia3", ia3, mergeable=True)
