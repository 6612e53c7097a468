"""Which parameters train under each method, including the DeepSeek-V3 presets (MLA + MoE)."""

import pytest
import torch

from seektune.config import MethodConfig
from seektune.errors import ConfigError
from seektune.models import methods
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


def test_deepseek_attention_preset_wraps_exactly_the_mla_projections(deepseek):
    linears = {n: m for n, m in deepseek.named_modules() if isinstance(m, torch.nn.Linear)}
    model = methods.prepare(deepseek, MethodConfig(name="lora", lora={"r": 2, "target_modules": "deepseek-attention"}))
    attention = ["q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"]
    expected = sorted(f"model.layers.{i}.self_attn.{m}" for i in range(3) for m in attention)
    assert _wrapped_modules(model) == expected
    # LoRA adds r * (in + out) parameters per wrapped Linear
    assert methods.trainable_summary(model)[0] == sum(2 * (linears[w].in_features + linears[w].out_features)
                                                      for w in expected)


def test_deepseek_preset_covers_mla_and_every_mlp_including_fused_routed_experts(deepseek):
    with pytest.raises(ConfigError, match="lora_dropout must be 0"):
        methods.prepare(deepseek, MethodConfig(name="lora", lora={"r": 2, "target_modules": "deepseek"}))
    model = methods.prepare(deepseek, MethodConfig(name="lora", lora={"r": 2, "target_modules": "deepseek",
                                                                      "lora_dropout": 0.0}))
    wrapped = _wrapped_modules(model)
    attention = ["q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"]
    mla = [f"model.layers.{i}.self_attn.{m}" for i in range(3) for m in attention]
    # peft 0.21 moves gate/up/down_proj targets of DeepSeek-V3 to the fused routed-expert parameters
    # (gate_up_proj nested in down_proj's wrapper); the dense layer-0 MLP and the shared experts are not wrapped.
    # This pins that behaviour so a peft change shows up here.
    experts = [f"model.layers.{i}.mlp.experts{s}" for i in (1, 2) for s in ("", ".base_layer")]
    assert wrapped == sorted(mla + experts)
    assert not any(w.endswith("mlp.gate") for w in wrapped)  # the router stays frozen


def test_unknown_modules_are_a_config_error(llama):
    with pytest.raises(ConfigError, match="method.lora"):
        methods.prepare(llama, MethodConfig(name="lora", lora={"target_modules": ["no_such_proj"]}))
