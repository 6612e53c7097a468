"""The frozen base in bf16 under bf16 autocast (`train.frozen_dtype: auto`): which runs get it, that it trains
like the fp32 base, and that what is saved is unchanged (an fp32 adapter on the fp32 base; whole models in fp32)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from seektune.cli import main
from seektune.config import ModelConfig
from seektune.method_config import MethodConfig
from seektune.models import methods
from seektune.models.layers import store_frozen_in
from seektune.models.loading import load_model
from tests.conftest import write_config


@pytest.mark.parametrize("method, frozen_dtype, precision, sharded, expected", [
    ({"name": "lora"}, "auto", "bf16", False, True),
    ({"name": "ia3"}, "auto", "bf16", False, True),
    ({"name": "lora"}, "fp32", "bf16", False, False),      # turned off
    ({"name": "lora"}, "auto", "no", False, False),        # fp32 autocast: nothing to gain
    ({"name": "lora"}, "auto", "fp16", False, False),      # fp16 weights overflow where bf16 does not
    ({"name": "lora"}, "auto", "bf16", True, False),       # fsdp2 gathers one dtype per layer
    ({"name": "qlora"}, "auto", "bf16", False, False),     # already 4-bit
    ({"name": "lora", "qat": {"bits": 4}}, "auto", "bf16", False, False),
    ({"name": "full"}, "auto", "bf16", False, False),      # the artifact is the whole model
    ({"name": "freeze"}, "auto", "bf16", False, False),
])
def test_which_runs_store_the_frozen_base_in_bf16(method, frozen_dtype, precision, sharded, expected):
    assert methods.frozen_in_bf16(MethodConfig.model_validate(method), frozen_dtype, precision, sharded) is expected


def test_frozen_weights_go_to_bf16_and_trainable_ones_and_buffers_stay(tiny_llama_dir):
    model = methods.prepare(load_model(ModelConfig(name_or_path=str(tiny_llama_dir))), MethodConfig(name="lora"))
    buffers = {name: b.dtype for name, b in model.named_buffers()}
    store_frozen_in(model, torch.bfloat16)
    dtypes = {p.dtype for p in model.parameters() if not p.requires_grad}
    assert dtypes == {torch.bfloat16}
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    assert {name: b.dtype for name, b in model.named_buffers()} == buffers


def _losses(run):
    return [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]


def test_a_bf16_base_trains_like_the_fp32_base_and_saves_the_same_kind_of_adapter(tmp_path, tiny_llama_dir,
                                                                                 alpaca_file):
    runs = {}
    for frozen in ("auto", "fp32"):
        cfg = write_config(tmp_path / frozen, tiny_llama_dir, alpaca_file,
                           train={"precision": "bf16", "frozen_dtype": frozen, "max_steps": 8, "learning_rate": 1e-2})
        assert main(["train", str(cfg)]) == 0
        runs[frozen] = tmp_path / frozen / "runs" / "run"
    result = json.loads((runs["auto"] / "result.json").read_text())
    assert result["frozen_weights"] == "bf16"
    assert json.loads((runs["fp32"] / "result.json").read_text())["frozen_weights"] == "fp32"
    bf16, fp32 = _losses(runs["auto"]), _losses(runs["fp32"])
    assert bf16[-1] < bf16[0] and fp32[-1] < fp32[0]
    assert max(abs(a - b) / b for a, b in zip(bf16, fp32)) < 0.03, (bf16, fp32)
    adapter = load_file(runs["auto"] / "final/adapter_model.safetensors")
    assert adapter and {t.dtype for t in adapter.values()} == {torch.float32}


def test_a_full_run_under_bf16_keeps_and_saves_fp32_weights(tmp_path, tiny_llama_dir, alpaca_file):
    cfg = write_config(tmp_path, tiny_llama_dir, alpaca_file, method={"name": "freeze"},
                       train={"precision": "bf16", "max_steps": 2})
    assert main(["train", str(cfg)]) == 0
    run = tmp_path / "runs" / "run"
    assert json.loads((run / "result.json").read_text())["frozen_weights"] == "fp32"
    weights = load_file(run / "final/model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}


@pytest.mark.parametrize("method", [
    {"name": "lora", "lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "use_dora": True}},
    {"name": "adalora"}, {"name": "bottleneck"}, {"name": "prompt"}, {"name": "prefix"}, {"name": "p_tuning"}])
def test_every_adapter_method_trains_on_a_bf16_base(tmp_path, tiny_llama_dir, alpaca_file, method):
    packing = method["name"] not in ("prompt", "prefix", "p_tuning")
    cfg = write_config(tmp_path, tiny_llama_dir, alpaca_file, method=method, data={"packing": packing},
                       train={"precision": "bf16", "max_steps": 2})
    assert main(["train", str(cfg)]) == 0
    run = tmp_path / "runs" / "run"
    assert json.loads((run / "result.json").read_text())["frozen_weights"] == "bf16"
    assert all(torch.isfinite(torch.tensor(loss)) for loss in _losses(run))
