"""The same loop under `accelerate launch --num_processes 2` on CPU (gloo)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import write_config

pytestmark = pytest.mark.slow


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, tiny_llama_dir, alpaca_file):
    common = dict(data={"packing": False}, train={"max_steps": 3, "micro_batch_size": 2, "num_threads": 1})
    ddp_cfg = write_config(tmp_path / "ddp", tiny_llama_dir, alpaca_file, **common)
    launcher = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or "accelerate"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # on a machine without CUDA, --multi_gpu starts torchrun and accelerate selects MULTI_CPU (gloo);
    # `--cpu` would start a single process
    done = subprocess.run([launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "seektune.cli", "train",
                           str(ddp_cfg)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "processes: 2" in done.stdout

    # one process accumulating 2 micro-batches sees the same 4 rows per step
    single_cfg = write_config(tmp_path / "one", tiny_llama_dir, alpaca_file, data={"packing": False},
                              train={"max_steps": 3, "micro_batch_size": 2, "gradient_accumulation_steps": 2})
    from seektune.cli import main

    assert main(["train", str(single_cfg)]) == 0
    a = load_file(tmp_path / "ddp/runs/run/final/adapter_model.safetensors")
    b = load_file(tmp_path / "one/runs/run/final/adapter_model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)
    ddp_losses = [json.loads(x)["loss"] for x in (tmp_path / "ddp/runs/run/metrics.jsonl").read_text().splitlines()]
    one_losses = [json.loads(x)["loss"] for x in (tmp_path / "one/runs/run/metrics.jsonl").read_text().splitlines()]
    assert ddp_losses == pytest.approx(one_losses, rel=1e-4)
