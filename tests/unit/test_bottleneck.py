"""Bottleneck adapters: identity at start, only they train, saved format reloads to the same logits."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from seektune.config import MethodConfig
from seektune.errors import ModelError
from seektune.models import methods
from seektune.models.methods import bottleneck


def test_untrained_adapter_is_the_identity_and_only_adapters_train(tiny_llama_dir):
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    model = methods.prepare(AutoModelForCausalLM.from_pretrained(tiny_llama_dir),
                            MethodConfig(name="bottleneck", bottleneck={"dim": 4})).eval()
    ids = torch.tensor([[3, 14, 15, 9, 26]])
    torch.testing.assert_close(model(ids).logits, base(ids).logits)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"model.layers.{i}.bottleneck_{place}.{proj}.{kind}" for i in range(2)
                         for place in ("attention", "mlp") for proj in ("down", "up") for kind in ("weight", "bias")}


def test_save_and_load_reproduce_the_trained_adapter(tiny_llama_dir, tmp_path):
    model = methods.prepare(AutoModelForCausalLM.from_pretrained(tiny_llama_dir),
                            MethodConfig(name="bottleneck", bottleneck={"dim": 4, "placement": ["mlp"]})).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "bottleneck" in n:
                p.normal_(0, 0.2)
    bottleneck.save(model, MethodConfig(name="bottleneck", bottleneck={"dim": 4, "placement": ["mlp"]}).bottleneck,
                    tmp_path, str(tiny_llama_dir))
    meta = json.loads((tmp_path / "bottleneck_config.json").read_text())
    assert meta["format"] == "seektune-bottleneck" and meta["placement"] == ["mlp"]
    reloaded = bottleneck.load(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), tmp_path).eval()
    ids = torch.tensor([[3, 14, 15, 9, 26]])
    torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    assert not torch.allclose(reloaded(ids).logits, base(ids).logits)


def test_loading_onto_a_different_model_is_refused(tiny_llama_dir, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    model = methods.prepare(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), MethodConfig(name="bottleneck"))
    bottleneck.save(model, MethodConfig().bottleneck, tmp_path, str(tiny_llama_dir))
    other = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2))
    with pytest.raises(ModelError, match="hidden_size"):
        bottleneck.load(other, tmp_path)
