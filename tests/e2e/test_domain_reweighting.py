"""Multi-domain training: rows sampled per domain by weight, weights re-estimated from per-domain eval loss,
and a resumed run equal to an uninterrupted one (weights restored from the checkpoint)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from seektune.cli import main
from tests.conftest import QA, write_config

pytestmark = pytest.mark.slow


def _files(tmp_path):
    def write(name, pairs):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"instruction": q, "output": a}) + "\n" for q, a in pairs))
        return path

    half = len(QA) // 2
    return write("general", QA[:half]), write("clinic", QA[half:])


def _config(tmp_path, model_dir, general, clinic, max_steps):
    return write_config(
        tmp_path, model_dir, general,
        data={"train": [{"path": str(general), "domain": "general", "weight": 0.7},
                        {"path": str(clinic), "domain": "clinic", "weight": 0.3}],
              "eval": [{"path": str(general), "domain": "general"}, {"path": str(clinic), "domain": "clinic"}],
              "domain_reweighting": True, "reweight_step_size": 5.0, "max_length": 64},
        train={"max_steps": max_steps, "eval_every": 2, "save_every": 4, "micro_batch_size": 2,
               "learning_rate": 5e-3, "precision": "fp32", "warmup_ratio": 0.0, "seed": 3})


def test_weights_move_and_resume_is_exact(tmp_path, tiny_llama_dir):
    general, clinic = _files(tmp_path)
    straight = _config(tmp_path / "straight", tiny_llama_dir, general, clinic, 8)
    assert main(["train", str(straight)]) == 0
    log = [json.loads(line) for line in (tmp_path / "straight/runs/run/metrics.jsonl").read_text().splitlines()]
    updates = [m["domain_weights"] for m in log if "domain_weights" in m]
    assert len(updates) == 4 and all(abs(sum(w.values()) - 1) < 1e-9 for w in updates)
    assert updates[0] != {"general": 0.7, "clinic": 0.3} and updates[-1] != updates[0]

    cut = _config(tmp_path / "cut", tiny_llama_dir, general, clinic, 8)
    from seektune.train import checkpoint

    real_finalise = checkpoint.finalise

    def crash_after_step_4(root, step, keep_last):
        real_finalise(root, step, keep_last)
        if step == 4:
            raise RuntimeError("simulated crash")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpoint, "finalise", crash_after_step_4)
        with pytest.raises(RuntimeError, match="simulated crash"):
            main(["train", str(cut)])
    assert main(["train", str(cut), "--resume"]) == 0
    a = load_file(tmp_path / "cut/runs/run/final/adapter_model.safetensors")
    b = load_file(tmp_path / "straight/runs/run/final/adapter_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
