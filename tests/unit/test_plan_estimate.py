"""The planner's arithmetic and its recommendations on shapes from the seeds' hardware tables (a 7B Llama from its
config alone, on the meta device): what fits where, and the smallest change that makes a run fit."""

import re

import pytest
from transformers import LlamaConfig

from seektune import config
from seektune.errors import ConfigError
from seektune.method_config import MethodConfig
from seektune.plan import hardware
from seektune.plan.estimate import estimate
from seektune.plan.hardware import Hardware
from seektune.plan.planner import plan, usable_bytes, workload
from seektune.plan.shape import from_config

LLAMA_7B = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=32, vocab_size=32000)
GB = 10**9


def _cfg(tmp_path, method="lora", extra=""):
    p = tmp_path / "c.yaml"
    p.write_text(f"data: {{train: a.jsonl, max_length: 2048}}\nmethod: {{name: {method}}}\n"
                 f"train: {{micro_batch_size: 4, gradient_accumulation_steps: 2{extra}}}\n")
    return config.load(p)


@pytest.fixture(scope="module")
def lora_7b():
    return from_config(LLAMA_7B, MethodConfig(name="lora"))


@pytest.mark.parametrize("spec, devices, each", [
    ("8x80GB", 8, 80 * GB), ("1x24GB", 1, 24 * GB), ("2x24GiB", 2, 24 * 2**30), (" 4 x 40.5 gb ", 4, 40.5 * GB)])
def test_gpu_specs_parse(spec, devices, each):
    assert hardware.parse(spec) == Hardware(devices, int(each), "gpu")


def test_cpu_is_the_memory_available_now():
    cpu = hardware.parse("cpu")
    assert cpu.kind == "cpu" and cpu.devices == 1 and 2**28 < cpu.bytes_each < 2**50


@pytest.mark.parametrize("spec", ["80GB", "0x80GB", "8x", "eight GPUs", "8x80GW"])
def test_bad_specs_name_the_flag_and_the_form(spec):
    with pytest.raises(ConfigError, match=r"--gpus .*expected NxSIZE such as 8x80GB"):
        hardware.parse(spec)


def test_7b_shape_counts_lora_on_every_linear(lora_7b):
    assert lora_7b.params == 6_738_415_616                  # Llama-2-7B's published count
    # r=16 on q, k, v, o (4096 -> 4096) and gate, up, down (4096 <-> 11008) in 32 layers
    assert lora_7b.trainable == 32 * 16 * (4 * 2 * 4096 + 3 * (4096 + 11008))
    assert lora_7b.layer_linear_params == 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)


def test_checkpointing_keeps_one_input_per_layer(lora_7b, tmp_path):
    cfg, gpu = _cfg(tmp_path), Hardware(1, 80 * GB, "gpu")
    plain = estimate(lora_7b, workload(cfg, gpu, 0.5)).parts["activations"]
    checkpointed = estimate(lora_7b, workload(cfg, gpu, 0.5, checkpointing=True)).parts["activations"]
    layer_inputs = 4 * 2048 * 32 * 4 * 4096
    assert checkpointed == layer_inputs + plain // 32


def test_fsdp2_divides_weights_gradients_and_optimizer(tmp_path):
    full = from_config(LLAMA_7B, MethodConfig(name="full"))
    cfg, gpu = _cfg(tmp_path, "full"), Hardware(8, 80 * GB, "gpu")
    one = estimate(full, workload(cfg, gpu, 0.5, micro_batch=1, checkpointing=True, shards=1))
    eight = estimate(full, workload(cfg, gpu, 0.5, micro_batch=1, checkpointing=True, shards=8))
    assert eight.resident["weights"] == one.resident["weights"] // 8
    assert eight.resident["optimizer"] == one.resident["optimizer"] // 8 == full.params * 8 // 8
    assert eight.gradients == one.gradients // 8
    assert eight.forward == one.forward                       # each process runs its own micro-batch
    assert "gathered layer" in eight.resident and "gathered layer" not in one.resident


def test_the_peak_holds_the_larger_of_gradients_and_activations(tmp_path):
    full = from_config(LLAMA_7B, MethodConfig(name="full"))
    short = estimate(full, workload(_cfg(tmp_path, "full"), Hardware(1, 80 * GB, "gpu"), 0.5, micro_batch=1,
                                    checkpointing=True))
    assert not short.forward_peaks and short.parts["gradients"] == full.params * 4
    assert short.total == sum(short.resident.values()) + short.gradients


def test_a_7b_lora_on_one_24gb_card_fits_with_checkpointing_and_a_smaller_micro_batch(tmp_path):
    result = plan(_cfg(tmp_path), LLAMA_7B, hardware.parse("1x24GB"))
    assert not result.configured.fits
    weights = result.configured.estimate.parts["weights"]
    assert weights == 6_738_415_616 * 2 + 39_976_960 * 4        # the frozen base in bf16, the adapter in fp32
    assert "weight casts" not in result.configured.estimate.parts   # autocast has nothing left to cast
    # the chunked loss holds one chunk of logits (2,097 rows of a 32k vocabulary on a GPU) and the hidden states'
    # gradients: 0.69 GiB instead of 1.22 for all 4,096 answer tokens of 4 x 2048
    assert result.configured.estimate.parts["logits"] < 0.75 * 2**30
    assert result.recommended.overrides == ("train.gradient_checkpointing=true", "train.micro_batch_size=2",
                                            "train.gradient_accumulation_steps=4")
    assert 15 * 2**30 < result.recommended.estimate.total <= usable_bytes(result.hardware)  # the seeds' ~16 GB


def test_with_an_fp32_base_the_same_run_needs_qlora(tmp_path):
    result = plan(_cfg(tmp_path, extra=", frozen_dtype: fp32"), LLAMA_7B, hardware.parse("1x24GB"))
    assert result.configured.estimate.parts["weights"] > 27 * GB
    assert result.configured.estimate.parts["weight casts"] > 12 * GB
    assert result.recommended.overrides == ("method.name=qlora", "train.gradient_checkpointing=true")
    assert result.recommended.estimate.total <= usable_bytes(result.hardware)


def test_a_7b_full_run_on_8x80gb_is_sharded_and_keeps_its_global_batch(tmp_path):
    result = plan(_cfg(tmp_path, "full"), LLAMA_7B, hardware.parse("8x80GB"))
    assert not result.configured.fits                         # 16 bytes per parameter on each GPU: 108 GB
    overrides = result.recommended.overrides
    assert "train.sharding=fsdp2" in overrides and not any(o.startswith("method.name") for o in overrides)
    micro = next((int(o.split("=")[1]) for o in overrides if o.startswith("train.micro_batch_size=")), 4)
    accumulation = next((int(o.split("=")[1]) for o in overrides
                         if o.startswith("train.gradient_accumulation_steps=")), 2)
    assert micro * accumulation == 8


def test_a_run_that_fits_gets_no_recommendation(tmp_path):
    result = plan(_cfg(tmp_path, extra=", gradient_checkpointing: true"), LLAMA_7B, hardware.parse("1x80GB"))
    assert result.configured.fits and result.recommended is None


def test_nothing_fits_a_card_smaller_than_the_quantized_weights(tmp_path):
    result = plan(_cfg(tmp_path), LLAMA_7B, hardware.parse("1x4GB"))
    assert not result.configured.fits and result.recommended is None


@pytest.mark.parametrize("flags, message", [(["--gpus", "80GB"], "expected NxSIZE"),
                                            (["--answer-fraction", "1.5"], r"expected a share of tokens in \(0, 1\]")])
def test_the_cli_refuses_bad_flags_before_reading_a_model(tmp_path, capsys, flags, message):
    from seektune.cli import main

    (tmp_path / "c.yaml").write_text("model: {name_or_path: /nonexistent/model}\ndata: {train: a.jsonl}\n")
    assert main(["plan", str(tmp_path / "c.yaml"), *flags]) == 2
    assert re.search(message, capsys.readouterr().err)
