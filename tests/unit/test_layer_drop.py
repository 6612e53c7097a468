"""Layer dropping: the kept layers compute what they computed inside the full model, the saved student loads with
plain transformers, and its KV cache is indexed right (cached greedy decoding = uncached)."""

import copy

import torch
from torch import nn

from seektune.cli import main
from seektune.models.layer_drop import drop_layers
from tests.conftest import make_tiny_llama


def _skip_layers(model, keep):
    """The reference: the same model with its layer list cut by hand (no renumbering)."""
    ref = copy.deepcopy(model)
    ref.model.layers = nn.ModuleList([ref.model.layers[i] for i in keep])
    ref.config.num_hidden_layers = len(keep)
    return ref


def test_student_from_the_cli_equals_the_kept_layers_and_generates_with_its_cache(tmp_path, tiny_tokenizer, capsys):
    from transformers import AutoModelForCausalLM

    source = make_tiny_llama(tmp_path / "teacher", tiny_tokenizer, layers=3)
    assert main(["drop-layers", str(source), "--keep", "0-2:2", "--out", str(tmp_path / "student")]) == 0
    assert "kept 2 of 3 layers (0, 2)" in capsys.readouterr().out
    student = AutoModelForCausalLM.from_pretrained(tmp_path / "student").eval()
    assert student.config.num_hidden_layers == 2
    assert [layer.self_attn.layer_idx for layer in student.model.layers] == [0, 1]
    ids = torch.tensor([tiny_tokenizer("Which days? Tuesdays and Thursdays.")["input_ids"]])
    ref = _skip_layers(AutoModelForCausalLM.from_pretrained(source), [0, 2]).eval()
    with torch.no_grad():
        assert torch.allclose(student(ids).logits, ref(ids, use_cache=False).logits, atol=1e-5)
        cached = student.generate(ids, max_new_tokens=8, do_sample=False)
        uncached = student.generate(ids, max_new_tokens=8, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


def test_deepseek_keeps_its_dense_layers_first(tmp_path):
    from transformers import AutoModelForCausalLM, DeepseekV3ForCausalLM

    from seektune.models.registry import tiny_deepseek_v3_config

    torch.manual_seed(0)
    model = DeepseekV3ForCausalLM(tiny_deepseek_v3_config(vocab_size=300)).eval()   # layer 0 dense, 1-2 MoE
    ids = torch.randint(0, 300, (1, 12))
    with torch.no_grad():
        expected = _skip_layers(model, [0, 2])(ids, use_cache=False).logits
    drop_layers(model, [0, 2])
    assert model.config.first_k_dense_replace == 1
    model.save_pretrained(tmp_path / "student")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "student").eval()
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, expected, atol=1e-5)


def test_layers_out_of_range_are_refused(tmp_path, tiny_tokenizer, capsys):
    source = make_tiny_llama(tmp_path / "m", tiny_tokenizer, layers=2)
    assert main(["drop-layers", str(source), "--keep", "0-5", "--out", str(tmp_path / "s")]) == 2
    assert "within 0-1" in capsys.readouterr().err
    assert main(["drop-layers", str(source), "--keep", "every other", "--out", str(tmp_path / "s")]) == 2
    assert "--keep" in capsys.readouterr().err
