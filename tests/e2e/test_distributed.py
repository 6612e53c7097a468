"""The same loop under `accelerate launch --num_processes 2` on CPU (gloo): DDP, and torch's FSDP2 through
`train.sharding: fsdp2` under plain torchrun."""

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


def _torchrun(config, *extra):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                           "2", "-m", "seektune.cli", "train", str(config), *extra], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def _losses(run):
    return [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]


@pytest.mark.parametrize("method", ["lora", "full"])
def test_fsdp2_shards_matches_one_process_and_resumes_exactly(tmp_path, tiny_llama_dir, alpaca_file, method):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from seektune.cli import main

    method_cfg = {"name": method} if method == "full" else {}
    common = dict(data={"packing": False}, method=method_cfg, train={"max_steps": 4, "micro_batch_size": 2,
                                                                      "learning_rate": 1e-3, "save_every": 2})
    sharded_cfg = write_config(tmp_path / "fsdp", tiny_llama_dir, alpaca_file,
                               **{**common, "train": {**common["train"], "sharding": "fsdp2", "num_threads": 1}})
    done = _torchrun(sharded_cfg)
    assert "processes: 2" in done.stdout
    sharded = tmp_path / "fsdp/runs/run"
    engine = sharded / "checkpoints/step-2/engine"
    assert (engine / ".metadata").is_file() and len(list(engine.glob("*.distcp"))) == 2  # one shard per process
    assert not (sharded / "checkpoints/step-2/trainable.safetensors").exists()

    # one process accumulating 2 micro-batches sees the same 4 rows per step
    single_cfg = write_config(tmp_path / "one", tiny_llama_dir, alpaca_file,
                              **{**common, "train": {**common["train"], "gradient_accumulation_steps": 2}})
    assert main(["train", str(single_cfg)]) == 0
    single = tmp_path / "one/runs/run"
    weights = "model.safetensors" if method == "full" else "adapter_model.safetensors"
    a, b = load_file(sharded / "final" / weights), load_file(single / "final" / weights)
    assert a.keys() == b.keys() and sorted(p.name for p in (sharded / "final").iterdir()) == sorted(
        p.name for p in (single / "final").iterdir())
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        torch.testing.assert_close(a[k], b[k], atol=2e-5, rtol=1e-4)
    assert _losses(sharded) == pytest.approx(_losses(single), rel=1e-4)

    # the artifact loads with plain transformers / peft
    if method == "full":
        AutoModelForCausalLM.from_pretrained(sharded / "final")
    else:
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), sharded / "final")

    # resume from the sharded step-2 checkpoint: steps 3-4 again, the same weights to the bit
    first = {k: v.clone() for k, v in a.items()}
    shutil.rmtree(sharded / "final")
    _torchrun(sharded_cfg, "--resume")
    again = load_file(sharded / "final" / weights)
    assert all(torch.equal(first[k], again[k]) for k in first)
