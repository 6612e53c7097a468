"""LoRA targets for DeepSeek-V2/V3 (MLA attention, dense MLP layers, shared and routed MoE experts).

Module names: MLA projects q through q_a_proj/q_b_proj (q_proj when q_lora_rank is None), k/v through
kv_a_proj_with_mqa/kv_b_proj, and out through o_proj. The first `first_k_dense_replace` layers have a dense
`mlp.{gate,up,down}_proj`; later layers have `mlp.shared_experts.{gate,up,down}_proj` plus routed experts that
transformers 5 stores as fused 3-D parameters `mlp.experts.gate_up_proj` / `mlp.experts.down_proj`, reached
only through peft's parameter targeting. The router (`mlp.gate`) is never adapted.

peft 0.21 rewrites every LoRA target that ends in gate/up/down_proj on these models to the fused routed
experts (its shim for adapters trained on transformers 4, where experts were separate Linears), also when
loading. Presets that adapt the dense MLP or the shared experts therefore create and load their adapter with
that rewrite switched off (`moe_rewrite_disabled`); `seektune_method.json` in the adapter directory records it,
and seektune's loader honours it. Plain `PeftModel.from_pretrained` would redirect those targets to the routed
experts; the merged model (`seektune merge`) loads anywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

_ATTENTION = r"self_attn\.(q_proj|q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj|o_proj)"
_DENSE_MLP = r"mlp\.(gate_proj|up_proj|down_proj)"
_SHARED = r"mlp\.shared_experts\.(gate_proj|up_proj|down_proj)"
_ROUTED = ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]


@dataclass(frozen=True)
class Preset:
    module_patterns: tuple[str, ...]
    parameters: tuple[str, ...]
    description: str

    @property
    def needs_rewrite_disabled(self) -> bool:
        """Dense or shared-expert MLP targets end in gate/up/down_proj, which peft would redirect."""
        return _DENSE_MLP in self.module_patterns or _SHARED in self.module_patterns

    def target_regex(self) -> str | None:
        if not self.module_patterns:
            return None
        return r".*\.(" + "|".join(self.module_patterns) + ")"


PRESETS: dict[str, Preset] = {
    "deepseek-attention": Preset((_ATTENTION,), (), "MLA projections"),
    "deepseek-attention-mlp": Preset((_ATTENTION, _DENSE_MLP), (), "MLA + dense-layer MLP"),
    "deepseek-shared-experts": Preset((_SHARED,), (), "shared-expert MLPs of the MoE layers"),
    "deepseek-routed-experts": Preset((), tuple(_ROUTED), "fused routed-expert weights (parameter targeting)"),
    "deepseek": Preset((_ATTENTION, _DENSE_MLP, _SHARED), tuple(_ROUTED),
                       "MLA + dense MLP + shared experts + routed experts"),
}


def preset(target_modules: str | list[str]) -> Preset | None:
    """The preset a `lora.target_modules` value names, if it names one."""
    return PRESETS.get(target_modules) if isinstance(target_modules, str) else None


@contextlib.contextmanager
def moe_rewrite_disabled(active: bool = True) -> Iterator[None]:
    """Switch off peft's v4->v5 MoE target rewrite while an adapter is created or loaded."""
    if not active:
        yield
        return
    import peft.utils.transformers_weight_conversion as conversion

    original = conversion.convert_peft_config_for_transformers
    conversion.convert_peft_config_for_transformers = lambda *args, **kwargs: None
    try:
        yield
    finally:
        conversion.convert_peft_config_for_transformers = original
