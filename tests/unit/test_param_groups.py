"""Layer-wise learning rates, embedding/head rates, LoRA+ and weight decay land on the right parameters."""

import pytest
from transformers import AutoModelForCausalLM

from seektune.config import Config
from seektune.models import methods


def _config(**train):
    return Config.model_validate({"data": {"train": ["x.jsonl"]}, "train": {"learning_rate": 1e-3, **train},
                                  "method": {"name": "full"}})


def _rates(model, cfg):
    from seektune.train.param_groups import build

    rate = {}
    for group in build(model, cfg):
        for p in group["params"]:
            rate[id(p)] = (group["lr"], group["weight_decay"])
    return {n: rate[id(p)] for n, p in model.named_parameters() if p.requires_grad}


def test_layer_decay_embeddings_head_and_weight_decay(tiny_llama_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)  # 2 layers, untied head
    cfg = _config(layer_lr_decay=0.5, head_learning_rate=3e-3, weight_decay=0.1)
    rates = _rates(model, cfg)
    assert rates["model.layers.1.self_attn.q_proj.weight"] == (1e-3, 0.1)          # top layer: lr
    assert rates["model.layers.0.self_attn.q_proj.weight"] == (5e-4, 0.1)          # one below: lr x 0.5
    assert rates["model.layers.0.input_layernorm.weight"] == (5e-4, 0.0)           # vectors: no decay
    assert rates["model.embed_tokens.weight"] == (pytest.approx(2.5e-4), 0.1)     # below the lowest layer
    assert rates["lm_head.weight"] == (3e-3, 0.1)
    assert rates["model.norm.weight"] == (1e-3, 0.0)
    rates = _rates(model, _config(embedding_learning_rate=7e-5))
    assert rates["model.embed_tokens.weight"][0] == 7e-5


def test_loraplus_multiplies_only_lora_b(tiny_llama_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    cfg = Config.model_validate({"data": {"train": ["x.jsonl"]}, "train": {"learning_rate": 1e-3},
                                 "method": {"name": "lora", "lora": {"r": 2, "loraplus_lr_ratio": 16}}})
    model = methods.prepare(model, cfg.method)
    rates = _rates(model, cfg)
    assert {lr for n, (lr, _) in rates.items() if ".lora_A." in n} == {1e-3}
    assert {lr for n, (lr, _) in rates.items() if ".lora_B." in n} == {1.6e-2}
