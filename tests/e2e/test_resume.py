"""A run killed with SIGKILL mid-training and resumed ends bit-for-bit equal to an uninterrupted run."""

import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from seektune.cli import main
from tests.conftest import write_config

pytestmark = pytest.mark.slow

SETTINGS = dict(
    method={"name": "lora", "lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.2}},  # dropout on: RNG matters
    train={"max_steps": 80, "micro_batch_size": 2, "gradient_accumulation_steps": 2, "save_every": 4,
           "keep_last": 2, "learning_rate": 2e-3, "warmup_ratio": 0.1, "seed": 11, "eval_every": 10},
    data={"eval_fraction": 0.25},
)


def _cmd(cfg, *extra):
    return [sys.executable, "-m", "seektune.cli", "train", str(cfg), *extra]


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def kill_after_checkpoint(cfg, run, step: int = 8, timeout: float = 240) -> None:
    """Start `seektune train cfg` and SIGKILL it the moment checkpoint `step` is complete."""
    proc = subprocess.Popen(_cmd(cfg), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    while not (run / f"checkpoints/step-{step}/COMPLETE").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "final").exists(), "the run finished before it could be killed"


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, tiny_llama_dir, alpaca_file, caplog):
    killed_cfg = write_config(tmp_path / "killed", tiny_llama_dir, alpaca_file, **SETTINGS)
    run = tmp_path / "killed/runs/run"
    kill_after_checkpoint(killed_cfg, run)

    # only the killed run needs a process of its own; resuming and the straight run go in-process (each process
    # start imports torch, transformers and peft again: ~10 s here)
    with caplog.at_level(logging.INFO, logger="seektune"):
        assert main(["train", str(killed_cfg), "--resume"]) == 0
    assert "resumed from" in caplog.text

    straight_cfg = write_config(tmp_path / "straight", tiny_llama_dir, alpaca_file, **SETTINGS)
    assert main(["train", str(straight_cfg)]) == 0

    a = load_file(run / "final/adapter_model.safetensors")
    b = load_file(tmp_path / "straight/runs/run/final/adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    # metrics after resume continue the same curve: one line per step, same losses
    import json

    def losses(path):
        return [(m["step"], m["loss"]) for m in map(json.loads, path.read_text().splitlines()) if "loss" in m]

    assert losses(run / "metrics.jsonl") == losses(tmp_path / "straight/runs/run/metrics.jsonl")
    # only the last `keep_last` complete checkpoints remain; no temporary directories
    left = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert len(left) == 2 and all(p.startswith("step-") for p in left)


def test_resume_refuses_a_changed_config(tmp_path, tiny_llama_dir, alpaca_file, capsys):
    cfg = write_config(tmp_path, tiny_llama_dir, alpaca_file, train={"max_steps": 4, "save_every": 2})
    assert main(["train", str(cfg)]) == 0
    assert main(["train", str(cfg), "train.learning_rate=0.5", "--resume"]) == 2
    assert "train.learning_rate" in capsys.readouterr().err


def test_sigterm_saves_a_checkpoint_and_the_ui_resumes_it_exactly(tmp_path, tiny_llama_dir, alpaca_file):
    """The web UI's Stop (SIGTERM) with no save_every: training finishes its step, checkpoints and exits (2, with
    how to continue); the run reads as resumable, and resuming ends equal to a run never stopped."""
    import json

    from seektune.ui.jobs import Jobs

    settings = {**SETTINGS, "train": {**SETTINGS["train"], "save_every": 0}}
    cfg = write_config(tmp_path / "stopped", tiny_llama_dir, alpaca_file, **settings)
    run = tmp_path / "stopped/runs/run"
    jobs = Jobs(tmp_path)
    job = jobs.start("run", cfg, run)
    deadline = time.time() + 240
    while not (run / "metrics.jsonl").is_file() or (run / "metrics.jsonl").read_text().count('"loss"') < 3:
        assert jobs.running("run"), jobs.log_tail("run")
        assert time.time() < deadline, "training did not start"
        time.sleep(0.002)
    assert jobs.stop("run")
    while jobs.running("run"):
        time.sleep(0.05)
    log = open(job.log).read()
    assert "training stopped by SIGTERM after step" in log and "--resume continues" in log
    [status] = jobs.statuses()
    assert status.state == "stopped (resumable)" and not (run / "final").exists()
    stopped_at = max(int(p.name.split("-")[1]) for p in (run / "checkpoints").iterdir())
    assert stopped_at == max(json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines())

    assert main(["train", str(run / "config.yaml"), "--resume"]) == 0   # what the UI's Resume runs
    straight = write_config(tmp_path / "straight", tiny_llama_dir, alpaca_file, **settings)
    assert main(["train", str(straight)]) == 0
    a = load_file(run / "final/adapter_model.safetensors")
    b = load_file(tmp_path / "straight/runs/run/final/adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
