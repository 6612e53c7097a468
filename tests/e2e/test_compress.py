"""seektune quantize / prune / export and quantization-aware training on tiny models: every output reloads with
plain transformers (or, for GGUF, transformers' GGUF reader and llama.cpp), its logits stay within a stated
tolerance of the full-precision model, and its files shrink where the method says they do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from seektune.artifacts import open_artifact
from seektune.cli import main
from seektune.compress.options import PruneOptions
from seektune.compress.quantize import group_size
from seektune.compress.record import weights_bytes
from seektune.models.memory import weight_bytes
from tests.conftest import write_config

pytestmark = pytest.mark.slow
PROMPT = "The clinic gives flu vaccinations on Tuesdays and Thursdays."


def _logits(model_or_dir, ids, **kwargs) -> torch.Tensor:
    model = model_or_dir if isinstance(model_or_dir, torch.nn.Module) else \
        AutoModelForCausalLM.from_pretrained(str(model_or_dir), dtype=torch.float32, **kwargs)
    with torch.no_grad():
        return model(ids).logits


@pytest.fixture(scope="module")
def ids(tiny_tokenizer):
    return torch.tensor([tiny_tokenizer(PROMPT).input_ids])


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_llama_dir) -> Path:
    """A finished LoRA run with a system prompt: its training data calibrates, its adapter is merged first."""
    from tests.conftest import QA

    root = tmp_path_factory.mktemp("lora-run")
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n" for q, a in QA))
    cfg = write_config(root, tiny_llama_dir, data, data={"system_prompt": "Answer briefly."})
    assert main(["train", str(cfg)]) == 0
    return root / "runs/run"


@pytest.fixture(scope="module")
def wide_llama_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """Widths in blocks of 64 (AWQ's CPU kernels need them)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("wide-llama")
    cfg = LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=False, eos_token_id=tiny_tokenizer.eos_token_id,
                      pad_token_id=tiny_tokenizer.pad_token_id, bos_token_id=tiny_tokenizer.bos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("method, tolerance", [("int8", 0.02), ("int4", 0.2), ("nf4", 0.2)])
def test_quantized_model_reloads_with_plain_transformers_close_and_smaller(tmp_path, tiny_llama_dir, ids, method,
                                                                          tolerance):
    out = tmp_path / method
    assert main(["quantize", str(tiny_llama_dir), "--method", method, "--out", str(out)]) == 0
    reloaded = AutoModelForCausalLM.from_pretrained(str(out))   # its quantization_config says how
    assert reloaded.config.quantization_config is not None
    with torch.no_grad():
        diff = (reloaded(ids).logits - _logits(tiny_llama_dir, ids)).abs().max().item()
    assert 0 < diff < tolerance
    record = json.loads((out / "compression.json").read_text())
    assert record["method"] == method and record["bytes_before"] == weights_bytes(tiny_llama_dir)
    assert record["bytes_after"] == weights_bytes(out) < record["bytes_before"]
    float_model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    assert weight_bytes(reloaded) < weight_bytes(float_model)      # counted as stored, not de-quantized
    artifact = open_artifact(out)
    assert artifact.kind.name == "quantized-model"
    model, tokenizer = artifact.load()
    assert (_logits(model, ids) - reloaded(ids).logits).abs().max().item() < 1e-4   # seektune opens it the same
    assert main(["quantize", str(out), "--method", "int8", "--out", str(tmp_path / "again")]) == 2  # not twice


def test_group_size_must_divide_the_widths_and_defaults_to_one_that_does(tiny_llama_dir, capsys):
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    assert group_size(model, None) == 64            # widths 64 and 128
    assert main(["quantize", str(tiny_llama_dir), "--method", "int4", "--group-size", "48", "--out", "x"]) == 2
    assert "--group-size 48 does not divide" in capsys.readouterr().err
    assert main(["quantize", str(tiny_llama_dir), "--method", "int8", "--bits", "4", "--out", "x"]) == 2


def test_gptq_calibrates_on_the_runs_own_data_and_reloads(tmp_path, lora_run, ids, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "gptq"
    assert main(["quantize", str(lora_run), "--method", "gptq", "--out", str(out), "--calibration-samples", "6"]) == 0
    record = json.loads((out / "compression.json").read_text())
    assert record["calibration"]["samples"] == 6 and len(record["calibration"]["sha256"]) == 64
    assert record["base_model"] and record["bytes_after"] < record["bytes_before"] / 2
    merged = open_artifact(lora_run).load_model().merge_and_unload()
    diff = (_logits(out, ids) - _logits(merged, ids)).abs().max().item()
    assert 0 < diff < 0.3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gptq"]   # gptqmodel's logs/ stays out of the cwd


def test_awq_reloads_and_refuses_widths_it_cannot_take(tmp_path, wide_llama_dir, tiny_llama_dir, alpaca_file, ids,
                                                      capsys):
    out = tmp_path / "awq"
    assert main(["quantize", str(wide_llama_dir), "--method", "awq", "--calibration", str(alpaca_file),
                 "--out", str(out)]) == 0
    assert 0 < (_logits(out, ids) - _logits(wide_llama_dir, ids)).abs().max().item() < 0.3
    assert main(["quantize", str(tiny_llama_dir), "--method", "awq", "--calibration", str(alpaca_file),
                 "--out", str(tmp_path / "no")]) == 2
    assert "multiples of 64" in capsys.readouterr().err
    assert main(["quantize", str(tiny_llama_dir), "--method", "gptq", "--out", str(tmp_path / "no")]) == 2
    assert "--calibration" in capsys.readouterr().err   # a bare model has no training data to calibrate on


def test_l1_channel_pruning_gives_a_smaller_dense_model(tmp_path, tiny_llama_dir, ids):
    out = tmp_path / "pruned"
    assert main(["prune", str(tiny_llama_dir), "--method", "l1-channels", "--sparsity", "0.5", "--prune-heads",
                 "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["intermediate_size"], config["num_key_value_heads"], config["num_attention_heads"],
            config["head_dim"]) == (64, 1, 2, 16)
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert model.model.layers[0].mlp.up_proj.weight.shape == (64, 64)
    assert model(ids).logits.shape == _logits(tiny_llama_dir, ids).shape
    assert weights_bytes(out) < weights_bytes(tiny_llama_dir)
    generated = model.generate(ids, max_new_tokens=4, do_sample=False)   # the KV cache takes the new head count
    assert generated.shape[1] == ids.shape[1] + 4


def test_kept_channels_are_the_ones_with_the_largest_l1_norm(tiny_llama_dir):
    from seektune.compress.structured import channel_scores, prune_mlp_channels

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    mlp = model.model.layers[1].mlp
    scores = channel_scores(mlp)
    keep = torch.topk(scores, 100).indices.sort().values
    up = mlp.up_proj.weight[keep].clone()
    prune_mlp_channels(model, 100)
    assert torch.equal(model.model.layers[1].mlp.up_proj.weight, up)
    assert model.config.intermediate_size == 100


def test_activation_channels_keep_the_channels_whose_activations_matter(tmp_path, lora_run, tiny_tokenizer):
    from seektune.compress.structured import activation_channel_scores

    merged = open_artifact(lora_run).load_model().merge_and_unload()
    samples = [tiny_tokenizer(q).input_ids for q in ("Which days?", PROMPT)]
    seen = []
    hook = merged.model.layers[1].mlp.down_proj.register_forward_hook(lambda m, i, o: seen.append(i[0][0]))
    scores = activation_channel_scores(merged, samples)
    hook.remove()
    activation = torch.cat(seen).pow(2).sum(0).sqrt()           # each channel's L2 norm over every token
    expected = activation * merged.model.layers[1].mlp.down_proj.weight.abs().sum(0)
    assert torch.allclose(scores[1], expected, rtol=1e-4)
    assert not torch.equal(torch.topk(scores[1], 64).indices.sort().values,
                           torch.topk(merged.model.layers[1].mlp.gate_proj.weight.abs().sum(1), 64).indices.sort().values)
    out = tmp_path / "act"
    assert main(["prune", str(lora_run), "--method", "activation-channels", "--sparsity", "0.5",
                 "--out", str(out)]) == 0
    record = json.loads((out / "compression.json").read_text())
    assert record["calibration"]["samples"] == 8 and record["measured"]["rounds"][0]["intermediate_size"] == 64
    assert AutoModelForCausalLM.from_pretrained(str(out)).config.intermediate_size == 64


def test_pruning_in_rounds_recovers_through_the_training_loop(tmp_path, lora_run):
    out = tmp_path / "pruned"
    assert main(["prune", str(lora_run), "--method", "l1-channels", "--sparsity", "0.4", "--steps", "2",
                 "--recover-steps", "2", "--recover-learning-rate", "1e-3", "--out", str(out)]) == 0
    record = json.loads((out / "compression.json").read_text())
    rounds = record["measured"]["rounds"]
    assert [r["intermediate_size"] for r in rounds] == [102, 77]     # 0.8 then 0.6 of 128 channels
    assert all(r["recovery"]["steps"] == 2 for r in rounds)
    assert json.loads((out / "config.json").read_text())["intermediate_size"] == 77
    assert not any(p.name.endswith("prune-work") for p in tmp_path.iterdir())   # the scratch runs are gone
    AutoModelForCausalLM.from_pretrained(str(out))


def test_magnitude_and_wanda_zeros_survive_reload(tmp_path, lora_run):
    for method in ("magnitude", "wanda"):
        out = tmp_path / method
        assert main(["prune", str(lora_run), "--method", method, "--sparsity", "0.5", "--out", str(out)]) == 0
        model = AutoModelForCausalLM.from_pretrained(str(out))
        weight = model.model.layers[0].mlp.down_proj.weight
        assert (weight == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
        record = json.loads((out / "compression.json").read_text())
        assert record["measured"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    wanda = AutoModelForCausalLM.from_pretrained(str(tmp_path / "wanda")).model.layers[0].self_attn.q_proj.weight
    assert (wanda == 0).sum(1).eq(32).all()                         # Wanda compares within each output row
    magnitude = AutoModelForCausalLM.from_pretrained(str(tmp_path / "magnitude")).model.layers[0].self_attn.q_proj
    assert not torch.equal(wanda == 0, magnitude.weight == 0)       # the activations changed what was cut


def test_gguf_f32_round_trip_is_exact_and_quantized_types_shrink(tmp_path, lora_run, ids, tiny_tokenizer):
    merged = open_artifact(lora_run).load_model().merge_and_unload()
    sizes = {}
    for kind in ("f32", "q8_0", "q4_0"):
        out = tmp_path / f"clinic-{kind}.gguf"
        assert main(["export", str(lora_run), "--type", kind, "--out", str(out)]) == 0
        sizes[kind] = out.stat().st_size
        diff = (_logits(tmp_path, ids, gguf_file=out.name) - _logits(merged, ids)).abs().max().item()
        assert diff < {"f32": 1e-6, "q8_0": 0.05, "q4_0": 0.3}[kind]
    assert sizes["q4_0"] < sizes["q8_0"] < sizes["f32"] / 2
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file="clinic-f32.gguf")
    assert tokenizer.chat_template == tiny_tokenizer.chat_template
    assert tokenizer(PROMPT).input_ids == tiny_tokenizer(PROMPT).input_ids
    modelfile = (tmp_path / "clinic-q8_0.Modelfile").read_text()
    assert "FROM ./clinic-q8_0.gguf" in modelfile and "<|im_start|>{{ .Role }}" in modelfile
    assert 'SYSTEM """Answer briefly."""' in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    record = json.loads((tmp_path / "clinic-q4_0.compression.json").read_text())
    assert record["settings"]["tensor_types"]["Q4_0"] == 14       # 7 matrices x 2 layers; embeddings at Q8_0
    assert open_artifact(tmp_path / "clinic-f32.gguf").kind.name == "gguf"


def test_gguf_runs_in_llama_cpp_with_the_same_greedy_tokens(tmp_path, tiny_llama_dir, tiny_tokenizer):
    llama_cpp = pytest.importorskip("ik_llama_cpp", reason="a llama.cpp runtime (the gguf-test extra)")
    out = tmp_path / "tiny.gguf"
    assert main(["export", str(tiny_llama_dir), "--type", "f32", "--out", str(out)]) == 0
    prompt = tiny_tokenizer(PROMPT).input_ids
    ours = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).generate(
        torch.tensor([prompt]), max_new_tokens=8, do_sample=False, eos_token_id=None)[0, len(prompt):].tolist()
    llm = llama_cpp.IkLlama(str(out), n_ctx=128, n_threads=2, verbose=False)
    theirs = llm.generate(prompt, max_tokens=8, temperature=0.0, top_k=1)
    same_tokens = llm.tokenize(PROMPT, add_bos=False) == prompt
    llm.close()
    assert same_tokens and len(theirs) == 8
    assert theirs == ours


@pytest.mark.parametrize("bits, method", [(4, "int4"), (8, "int8")])
def test_qat_converts_to_exactly_the_fake_quantized_model(tmp_path, tiny_llama_dir, alpaca_file, ids, bits, method):
    from torchao.quantization import quantize_
    from torchao.quantization.qat import QATConfig

    from seektune.models.methods.qat import base_config

    cfg = write_config(tmp_path, tiny_llama_dir, alpaca_file,
                       method={"name": "full", "qat": {"bits": bits, "group_size": 32}})
    assert main(["train", str(cfg)]) == 0
    final = tmp_path / "runs/run/final"
    group = 32 if bits == 4 else 0
    assert json.loads((final / "seektune_method.json").read_text())["qat"] == {"bits": bits, "group_size": group}
    trained = AutoModelForCausalLM.from_pretrained(str(final))        # ordinary float weights
    fake = AutoModelForCausalLM.from_pretrained(str(final))
    quantize_(fake, QATConfig(base_config(bits, group), step="prepare"),
              filter_fn=lambda m, name: isinstance(m, torch.nn.Linear) and name.startswith("model.layers."))
    out = tmp_path / method
    assert main(["quantize", str(tmp_path / "runs/run"), "--method", method, "--out", str(out)]) == 0
    if bits == 4:   # the run's own group size, not the default 64
        assert json.loads((out / "compression.json").read_text())["settings"]["group_size"] == 32
    quantized = _logits(out, ids)
    assert torch.allclose(quantized, _logits(fake, ids), atol=1e-5)
    assert (quantized - _logits(trained, ids)).abs().max().item() > 1e-4


def test_qat_lora_trains_and_resumes_exactly(tmp_path, tiny_llama_dir, alpaca_file, caplog):
    import logging

    from safetensors.torch import load_file

    from seektune import config as config_io
    from seektune.train.loop import train

    settings = dict(method={"name": "lora", "lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0},
                            "qat": {"bits": 8}}, train={"max_steps": 6, "save_every": 3})
    straight = train(config_io.load(write_config(tmp_path / "a", tiny_llama_dir, alpaca_file, **settings))) / "final"
    run = train(config_io.load(write_config(tmp_path / "b", tiny_llama_dir, alpaca_file, **settings)))
    shutil.rmtree(run / "final")
    assert (run / "checkpoints/step-3/COMPLETE").is_file()
    with caplog.at_level(logging.INFO, logger="seektune.train"):
        resumed = train(config_io.load(write_config(tmp_path / "b", tiny_llama_dir, alpaca_file, **settings)),
                        resume=True) / "final"
    assert "resumed from" in caplog.text
    a, b = load_file(straight / "adapter_model.safetensors"), load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((resumed / "seektune_method.json").read_text())["qat"] == {"bits": 8, "group_size": 0}
    assert open_artifact(resumed).load_model() is not None


def test_prune_refuses_options_of_another_method():
    from seektune.compress.prune import prune
    from seektune.errors import ConfigError

    with pytest.raises(ConfigError, match="--recover-steps"):
        prune("unused", PruneOptions(method="magnitude", sparsity=0.5, recover_steps=3, out="x"))


def test_compressed_models_are_served_under_their_own_names(tmp_path, tiny_llama_dir):
    from seektune.serve.catalog import load_catalog

    gguf = tmp_path / "clinic-q8.gguf"
    assert main(["export", str(tiny_llama_dir), "--type", "q8_0", "--out", str(gguf)]) == 0
    quantized = tmp_path / "clinic-int8"
    assert main(["quantize", str(tiny_llama_dir), "--method", "int8", "--out", str(quantized)]) == 0
    for ref, name in ((gguf, "clinic-q8"), (quantized, "clinic-int8")):
        catalog = load_catalog([str(ref)], dtype=torch.float32)
        assert list(catalog.models) == [name]
