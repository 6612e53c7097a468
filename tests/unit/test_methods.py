"""Which parameters train under each method, including the DeepSeek-V3 presets (MLA + MoE)."""

import pytest
import torch

from seektune.config import MethodConfig
from seektune.errors import ConfigError
from seektune.models import methods
from seektune.models.layers import trainable_summary
from seektune.models.registry import tiny_deepseek_v3_config


@pytest.fixture()
def llama(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_llama_dir)


@pytest.fixture()
def deepseek():
    from transformers import DeepseekV3ForCausalLM

    torch.manual_seed(0)
    return DeepseekV3ForCausalLM(tiny_deepseek_v3_config(vocab_size=300))


def trainable_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_full_trains_everything(llama):
    model = methods.prepare(llama, MethodConfig(name="full"))
    assert trainable_names(model) == {n for n, _ in model.named_parameters()}


def test_freeze_trains_last_layer_final_norm_and_head(llama):
    model = methods.prepare(llama, MethodConfig(name="freeze", freeze={"trainable_layers": 1}))
    names = trainable_names(model)
    assert all(n.startswith(("model.layers.1.", "model.norm.", "lm_head.")) for n in names)
    assert any(n.startswith("model.layers.1.") for n in names) and "lm_head.weight" in names
    assert not any(n.startswith("model.layers.0.") or "embed_tokens" in n for n in names)


def test_freeze_rejects_more_layers_than_the_model_has(llama):
    with pytest.raises(ConfigError, match="trainable_layers=5"):
        methods.prepare(llama, MethodConfig(name="freeze", freeze={"trainable_layers": 5}))


def test_lora_all_linear_wraps_every_projection_but_not_the_head(llama):
    model = methods.prepare(llama, MethodConfig(name="lora", lora={"r": 4}))
    names = trainable_names(model)
    assert names and all("lora_" in n for n in names)
    wrapped = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names}
    assert wrapped == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def _wrapped_modules(model):
    return sorted({n.split(".lora_")[0].replace("base_model.model.", "") for n, p in model.named_parameters()
                   if p.requires_grad and ".lora_" in n})


MLA = ["q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"]
ATTENTION = [f"model.layers.{i}.self_attn.{m}" for i in range(3) for m in MLA]
DENSE = [f"model.layers.0.mlp.{m}" for m in ("gate_proj", "up_proj", "down_proj")]  # first_k_dense_replace=1
SHARED = [f"model.layers.{i}.mlp.shared_experts.{m}" for i in (1, 2) for m in ("gate_proj", "up_proj", "down_proj")]
# fused expert parameters: down_proj's wrapper nests gate_up_proj's (peft's ParamWrapper chain)
ROUTED = [f"model.layers.{i}.mlp.experts{s}" for i in (1, 2) for s in ("", ".base_layer")]
ROUTED_PARAMS = [f"model.layers.{i}.mlp.experts.{p}" for i in (1, 2) for p in ("gate_up_proj", "down_proj")]

PRESET_TABLE = {
    "deepseek-attention": (ATTENTION, ATTENTION, []),
    "deepseek-attention-mlp": (ATTENTION + DENSE, ATTENTION + DENSE, []),
    "deepseek-shared-experts": (SHARED, SHARED, []),
    "deepseek-routed-experts": (ROUTED, [], ROUTED_PARAMS),
    "deepseek": (ATTENTION + DENSE + SHARED + ROUTED, ATTENTION + DENSE + SHARED, ROUTED_PARAMS),
}


@pytest.mark.parametrize("preset", list(PRESET_TABLE))
def test_deepseek_presets_wrap_exactly_their_part_with_exact_parameter_counts(deepseek, preset):
    wrapped, linears, fused = PRESET_TABLE[preset]
    modules, params = dict(deepseek.named_modules()), dict(deepseek.named_parameters())
    r = 2
    # LoRA adds r * (in + out) per Linear; a fused (experts, out, in) parameter gets rank r per expert
    expected = sum(r * (modules[n].in_features + modules[n].out_features) for n in linears)
    expected += sum(r * params[n].shape[0] * (params[n].shape[1] + params[n].shape[2]) for n in fused)
    model = methods.prepare(deepseek, MethodConfig(name="lora", lora={"r": r, "target_modules": preset,
                                                                      "lora_dropout": 0.0}))
    assert _wrapped_modules(model) == sorted(wrapped)
    assert trainable_summary(model)[0] == expected
    assert not any(w.endswith("mlp.gate") for w in _wrapped_modules(model))  # the router stays frozen


def test_fused_expert_targets_need_zero_dropout(deepseek):
    with pytest.raises(ConfigError, match="lora_dropout must be 0"):
        methods.prepare(deepseek, MethodConfig(name="lora", lora={"r": 2, "target_modules": "deepseek"}))


def test_deepseek_presets_refuse_other_architectures(llama):
    with pytest.raises(ConfigError, match="for DeepSeek-V2/V3"):
        methods.prepare(llama, MethodConfig(name="lora", lora={"target_modules": "deepseek-attention"}))


def test_plain_peft_still_redirects_mlp_targets_to_routed_experts(deepseek):
    """Why the dense/shared presets switch peft's MoE rewrite off: without that, peft 0.21 moves a
    `mlp.gate_proj` target onto the fused routed experts. When peft stops doing so, this fails: drop
    models/deepseek.py's moe_rewrite_disabled."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(deepseek, LoraConfig(r=2, target_modules=["gate_proj", "up_proj", "down_proj"]))
    assert _wrapped_modules(model) == sorted(ROUTED)


def test_freeze_fraction_freezes_the_bottom_layers(llama):
    model = methods.prepare(llama, MethodConfig(name="freeze", freeze={"frozen_fraction": 0.5}))
    names = trainable_names(model)
    assert any(n.startswith("model.layers.1.") for n in names)
    assert not any(n.startswith("model.layers.0.") for n in names)
    model = methods.prepare(llama, MethodConfig(name="freeze", freeze={"frozen_fraction": 1.0, "train_head": True}))
    assert trainable_names(model) == {"lm_head.weight"}


def test_unknown_modules_are_a_config_error(llama):
    with pytest.raises(ConfigError, match="method.lora"):
        methods.prepare(llama, MethodConfig(name="lora", lora={"target_modules": ["no_such_proj"]}))


def test_lora_variants_shape_the_adapter_as_configured(llama):
    model = methods.prepare(llama, MethodConfig(name="lora", lora={
        "r": 2, "use_dora": True, "rank_pattern": {"self_attn.*": 8, "mlp.*": 4}, "alpha_pattern": {"mlp.*": 12}}))
    params = dict(model.named_parameters())
    layer = "base_model.model.model.layers.0"
    assert params[f"{layer}.self_attn.q_proj.lora_A.default.weight"].shape[0] == 8
    assert params[f"{layer}.mlp.gate_proj.lora_A.default.weight"].shape[0] == 4
    assert f"{layer}.mlp.gate_proj.lora_magnitude_vector.default.weight" in params  # DoRA's magnitude
    gate = model.base_model.model.model.layers[0].mlp.gate_proj
    assert gate.scaling["default"] == 12 / 4


def test_hybrid_trains_the_last_layer_fully_and_lora_elsewhere(llama):
    model = methods.prepare(llama, MethodConfig(name="lora", lora={"r": 2, "full_layers": 1}))
    names = trainable_names(model)
    assert any(".layers.0." in n and ".lora_" in n for n in names)
    last = {n for n in names if ".layers.1." in n}
    assert last and not any(".lora_" in n for n in last)  # a full trainable copy, no LoRA inside it
    layer_size = sum(p.numel() for n, p in model.named_parameters() if ".layers.1." in n and "modules_to_save" in n)
    assert sum(p.numel() for n, p in model.named_parameters() if n in last) == layer_size > 0


def test_a_rank_pattern_that_matches_nothing_is_an_error_not_ignored(llama):
    with pytest.raises(ConfigError, match="method.lora.rank_pattern.*self_attn"):
        methods.prepare(llama, MethodConfig(name="lora", lora={"r": 2, "rank_pattern": {"self_attn": 8}}))
