"""The `method:` section of the config: which tuning method, and each method's own settings.

Field names follow peft where they map one to one (r, lora_alpha, use_dora, num_virtual_tokens...), so a
peft user recognises them. Each method reads its own sub-section; `qlora` and `adalora` also read `lora`
for the targets, alpha and dropout they share with LoRA.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from seektune.schema import Section

METHODS = ("full", "freeze", "lora", "qlora", "adalora", "ia3", "bottleneck", "prompt", "prefix", "p_tuning")
PROMPT_METHODS = ("prompt", "prefix", "p_tuning")


# how `seektune adapters combine` folds LoRA adapters into one (peft's add_weighted_adapter combination types);
# here, not in seektune.artifacts, so that building the CLI parser does not import torch
COMBINATIONS = ("linear", "cat", "svd", "ties", "ties_svd", "dare_linear", "dare_ties", "magnitude_prune")


class LoraConfig(Section):
    r: int = Field(16, gt=0, description="LoRA rank")
    lora_alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator (scale = alpha / r, or alpha / sqrt(r))")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="dropout on the LoRA input")
    target_modules: str | list[str] = Field(
        "all-linear",
        description="module names to wrap, 'all-linear', or a DeepSeek preset: deepseek-attention (MLA), "
        "deepseek-attention-mlp (MLA + dense MLP), deepseek-shared-experts, deepseek-routed-experts (fused "
        "expert parameters), deepseek (all of them)",
    )
    target_parameters: list[str] = Field(
        default_factory=list,
        description="fused parameters to adapt through peft's parameter targeting (e.g. mlp.experts.gate_up_proj)",
    )
    modules_to_save: list[str] = Field(default_factory=list, description="modules trained fully alongside LoRA")
    use_dora: bool = Field(False, description="DoRA: learn a magnitude per output and a LoRA direction")
    use_rslora: bool = Field(False, description="rank-stabilised LoRA: scale = alpha / sqrt(r)")
    init: Literal["default", "gaussian", "pissa", "olora"] = Field(
        "default",
        description="initialisation: default (B = 0), gaussian, pissa (principal singular vectors), olora (QR)",
    )
    rank_pattern: dict[str, int] = Field(
        default_factory=dict, description="per-module rank by name or regex, e.g. {'self_attn.*': 32, 'mlp.*': 16}"
    )
    alpha_pattern: dict[str, float] = Field(default_factory=dict, description="per-module alpha by name or regex")
    loraplus_lr_ratio: float = Field(
        0.0, ge=0.0, description="LoRA+: lora_B learns at learning_rate x this ratio (e.g. 16); 0 = off"
    )
    full_layers: int = Field(
        0, ge=0, description="hybrid: the last N transformer layers train fully; LoRA covers the other layers"
    )


class QLoraConfig(Section):
    bits: Literal[4, 8] = Field(4, description="storage of the frozen base weights (bitsandbytes)")
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type")
    double_quant: bool = Field(True, description="quantise the 4-bit scales too (saves ~0.4 bit per weight)")
    compute_dtype: Literal["bf16", "fp32", "fp16"] = Field("bf16", description="dtype the 4-bit matmuls run in")


class AdaLoraConfig(Section):
    init_r: int = Field(12, gt=0, description="starting rank of every adapted matrix")
    target_r: int = Field(4, gt=0, description="average rank left after budget reallocation")
    tinit: float = Field(0.1, ge=0, lt=1, description="fraction of steps before pruning starts (warm-up)")
    tfinal: float = Field(0.2, ge=0, lt=1, description="fraction of final steps with the budget fixed")
    delta_t: int = Field(1, gt=0, description="reallocate the rank budget every N optimizer steps")
    beta1: float = Field(0.85, gt=0, lt=1, description="EMA factor of parameter sensitivity")
    beta2: float = Field(0.85, gt=0, lt=1, description="EMA factor of sensitivity uncertainty")
    orth_reg_weight: float = Field(0.5, ge=0, description="weight of the orthogonality regulariser on P and Q")

    @model_validator(mode="after")
    def _budget(self) -> "AdaLoraConfig":
        if self.target_r > self.init_r:
            raise ValueError(f"method.adalora.target_r={self.target_r} must not exceed init_r={self.init_r}")
        if self.tinit + self.tfinal >= 1:
            raise ValueError("method.adalora: tinit + tfinal must leave some steps for reallocation (< 1)")
        return self


class IA3Config(Section):
    target_modules: list[str] | None = Field(
        None, description="modules whose activations are rescaled; None = peft's default for the architecture"
    )
    feedforward_modules: list[str] | None = Field(
        None, description="the subset of target_modules that are feed-forward (scaled on the input)"
    )


class BottleneckConfig(Section):
    dim: int = Field(16, gt=0, description="bottleneck width (down-projection size)")
    placement: list[Literal["attention", "mlp"]] = Field(
        default_factory=lambda: ["attention", "mlp"], min_length=1,
        description="where adapters go: after the attention block and/or after the MLP block of every layer",
    )
    activation: Literal["relu", "gelu", "silu", "tanh"] = Field("relu", description="non-linearity between projections")
    scale: float = Field(1.0, gt=0, description="multiplier on the adapter output added to the residual stream")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter input")


class PromptConfig(Section):
    num_virtual_tokens: int = Field(20, gt=0, description="learned virtual tokens (prompt, prefix, p_tuning)")
    init_text: str | None = Field(
        None, description="prompt tuning: initialise the virtual tokens from this text's embeddings (else random)"
    )
    encoder_hidden_size: int = Field(128, gt=0, description="p_tuning / prefix projection: hidden size of the MLP")
    encoder: Literal["mlp", "lstm"] = Field("mlp", description="p_tuning: prompt encoder type")
    prefix_projection: bool = Field(False, description="prefix: reparameterise prefixes through an MLP")


class FreezeConfig(Section):
    trainable_layers: int = Field(2, ge=0, description="number of last transformer layers left trainable")
    frozen_fraction: float | None = Field(
        None, ge=0, le=1, description="alternative to trainable_layers: freeze this fraction of layers from the bottom"
    )
    train_head: bool = Field(True, description="train the output head (lm_head) too")
    train_embeddings: bool = Field(False, description="train the input embeddings too")


QAT_METHODS = ("full", "freeze", "lora")


class QatConfig(Section):
    bits: Literal[4, 8] | None = Field(None, description="quantization-aware training: fake-quantize the decoder "
                                       "layers' weights to this many bits while training (torchao; None = off)")
    group_size: int = Field(32, ge=0, description="QAT int4: weights sharing one scale (0: per channel; int8 is "
                            "always per channel)")


class VisionTrainingConfig(Section):
    """What trains in a vision-language model besides what the method adapts in the language model."""

    projector: Literal["train", "frozen"] = Field(
        "train", description="the projector from image features to the language model (trained whole; saved "
        "beside an adapter)")
    tower: Literal["frozen", "train"] = Field(
        "frozen", description="the vision encoder: frozen, or trained (whole for full/freeze, adapted by LoRA)")
    language_model: Literal["train", "frozen"] = Field(
        "train", description="method full: train the language model too, or keep it frozen (objectives clip and "
        "caption freeze it: only the tower, the projector and clip's projections learn)")


class MethodConfig(Section):
    name: Literal[METHODS] = Field("lora", description="how the model is prepared: " + ", ".join(METHODS))
    lora: LoraConfig = Field(default_factory=LoraConfig)
    qlora: QLoraConfig = Field(default_factory=QLoraConfig)
    adalora: AdaLoraConfig = Field(default_factory=AdaLoraConfig)
    ia3: IA3Config = Field(default_factory=IA3Config)
    bottleneck: BottleneckConfig = Field(default_factory=BottleneckConfig)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    freeze: FreezeConfig = Field(default_factory=FreezeConfig)
    qat: QatConfig = Field(default_factory=QatConfig)
    vision: VisionTrainingConfig = Field(default_factory=VisionTrainingConfig)

    @model_validator(mode="after")
    def _combinations(self) -> "MethodConfig":
        if self.qat.bits is not None and self.name not in QAT_METHODS:
            raise ValueError(f"method.qat works with {', '.join(QAT_METHODS)} (it fake-quantizes the weights that "
                             f"train or that LoRA adapts), not {self.name}")
        if self.name in ("adalora", "qlora") and self.lora.full_layers:
            raise ValueError(f"method.lora.full_layers (hybrid) is supported with lora, not {self.name}")
        if self.name == "adalora" and (self.lora.use_dora or self.lora.init != "default"):
            raise ValueError("method.lora.use_dora / method.lora.init do not apply to adalora")
        if self.lora.use_dora and self.lora.init in ("pissa", "olora"):
            raise ValueError("method.lora.init: pissa/olora initialisation cannot be combined with use_dora")
        return self
