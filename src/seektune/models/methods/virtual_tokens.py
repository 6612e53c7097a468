"""peft's virtual-token methods: prompt tuning, prefix tuning and P-tuning (learned tokens before every input).

They prepend to every row, so they train on padded (unpacked) rows; the config rejects packing for them.
"""

from __future__ import annotations

from torch import nn

from seektune.method_config import MethodConfig
from seektune.models.methods.peft_family import wrap
from seektune.models.methods.spec import MethodSpec, PrepareContext


def prompt(model: nn.Module, cfg: MethodConfig, ctx: PrepareContext) -> nn.Module:
    from peft import PromptTuningConfig

    c = cfg.prompt
    init = {"prompt_tuning_init": "TEXT", "prompt_tuning_init_text": c.init_text,
            "tokenizer_name_or_path": ctx.tokenizer_path} if c.init_text else {"prompt_tuning_init": "RANDOM"}
    return wrap(model, PromptTuningConfig(num_virtual_tokens=c.num_virtual_tokens, task_type="CAUSAL_LM", **init),
                "prompt")


def prefix(model: nn.Module, cfg: MethodConfig, ctx: PrepareContext) -> nn.Module:
    from peft import PrefixTuningConfig

    c = cfg.prompt
    return wrap(model, PrefixTuningConfig(num_virtual_tokens=c.num_virtual_tokens,
                                          prefix_projection=c.prefix_projection,
                                          encoder_hidden_size=c.encoder_hidden_size, task_type="CAUSAL_LM"), "prompt")


def p_tuning(model: nn.Module, cfg: MethodConfig, ctx: PrepareContext) -> nn.Module:
    from peft import PromptEncoderConfig

    c = cfg.prompt
    return wrap(model, PromptEncoderConfig(num_virtual_tokens=c.num_virtual_tokens,
                                           encoder_hidden_size=c.encoder_hidden_size,
                                           encoder_reparameterization_type=c.encoder.upper(), task_type="CAUSAL_LM"),
                "prompt")


PROMPT = MethodSpec("prompt", prompt)        # learned input embeddings
PREFIX = MethodSpec("prefix", prefix)        # learned keys and values in every layer
P_TUNING = MethodSpec("p_tuning", p_tuning)  # virtual tokens from a small prompt encoder
