"""Continual learning through the real `seektune train`: task B starts from task A's merged adapter, EWC holds the
weights A's Fisher marks as important, replay and freezing do what they say, and a SIGKILLed run resumes exactly."""

import json

import pytest
import torch
from safetensors.torch import load_file

from seektune.cli import main
from tests.conftest import QA, write_config

pytestmark = pytest.mark.slow

TRAIN = {"micro_batch_size": 2, "gradient_accumulation_steps": 2, "learning_rate": 1e-2, "precision": "fp32",
         "warmup_ratio": 0.0, "seed": 3}


def _alpaca(path, pairs):
    path.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n" for q, a in pairs))
    return path


@pytest.fixture(scope="module")
def task_a(tmp_path_factory, tiny_llama_dir):
    tmp = tmp_path_factory.mktemp("task-a")
    cfg = write_config(tmp, tiny_llama_dir, _alpaca(tmp / "a.jsonl", QA[:4]), train={**TRAIN, "max_steps": 8})
    assert main(["train", str(cfg)]) == 0
    return tmp / "runs/run"


def _task_b(tmp_path, model_dir, task_a, steps=8, **continual):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = _alpaca(tmp_path / "b.jsonl", QA[4:])
    cfg = write_config(tmp_path, model_dir, data, train={**TRAIN, "max_steps": steps},
                       continual={"previous": [str(task_a)], "task": "b", **continual})
    assert main(["train", str(cfg)]) == 0
    return tmp_path / "runs/run"


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _weighted_change(run, fisher, scale=2.0):
    """sum F * (scale * B @ A)^2 over the adapter's modules: what EWC penalises."""
    weights = load_file(run / "final/adapter_model.safetensors")
    total = 0.0
    for key, a in weights.items():
        if "lora_A" in key:
            b = weights[key.replace("lora_A", "lora_B")]
            name = key.replace("base_model.model.", "").replace(".lora_A.weight", ".weight")
            total += (fisher[name] * (scale * b @ a) ** 2).sum().item()
    return total


def test_task_b_starts_from_a_merged_and_ewc_holds_what_a_needs(tmp_path, tiny_llama_dir, tiny_tokenizer, task_a):
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoModelForCausalLM

    naive = _task_b(tmp_path / "naive", tiny_llama_dir, task_a)
    ewc = _task_b(tmp_path / "ewc", tiny_llama_dir, task_a, ewc={"weight": 1e5, "fisher_samples": 4},
                  freeze_schedule={"b": "0"})

    # the start is task A's adapter merged into the base: same logits as peft's own merge
    ids = torch.tensor([tiny_tokenizer("Which days? Tuesdays.")["input_ids"]])
    a_merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), task_a / "final")
    start = AutoModelForCausalLM.from_pretrained(naive / "start")
    with torch.no_grad():
        assert torch.allclose(start(ids).logits, a_merged.merge_and_unload()(ids).logits, atol=1e-5)

    # task B's adapter names the merged start as its base and loads with plain peft
    config = json.loads((naive / "final/adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str((naive / "start").resolve())
    AutoPeftModelForCausalLM.from_pretrained(naive / "final")

    # A's Fisher is saved beside task A, computed once and reused
    fisher_file = task_a / "fisher.safetensors"
    fisher = load_file(fisher_file)
    assert fisher["model.layers.1.self_attn.q_proj.weight"].sum() > 0
    stamp = fisher_file.stat().st_mtime_ns
    _task_b(tmp_path / "again", tiny_llama_dir, task_a, steps=1, ewc={"weight": 1e5, "fisher_samples": 4})
    assert fisher_file.stat().st_mtime_ns == stamp

    # EWC: the change A's Fisher weighs is far smaller than naive fine-tuning's, and the logged penalty is it
    penalties = [m["ewc_penalty"] for m in _metrics(ewc)]
    assert penalties[0] == 0.0 and penalties[-1] > 0
    assert _weighted_change(ewc, fisher) < 0.2 * _weighted_change(naive, fisher)
    # freeze_schedule: layer 0 did not train (its B matrices are still zero), layer 1 did
    final = load_file(ewc / "final/adapter_model.safetensors")
    assert all(torch.count_nonzero(v) == 0 for k, v in final.items() if "layers.0." in k and "lora_B" in k)
    assert any(torch.count_nonzero(v) > 0 for k, v in final.items() if "layers.1." in k and "lora_B" in k)
    result = json.loads((ewc / "result.json").read_text())
    assert result["frozen_layers"] == [0] and result["continual_task"] == "b"

    # task C after A and B: online EWC over both Fishers, starting from B (its adapter on its own merged start)
    c_dir = tmp_path / "c"
    c_dir.mkdir()
    cfg = write_config(c_dir, tiny_llama_dir, _alpaca(c_dir / "c.jsonl", QA[2:6]), train={**TRAIN, "max_steps": 2},
                       continual={"previous": [str(task_a), str(ewc)], "ewc": {"weight": 10.0, "gamma": 0.5}})
    assert main(["train", str(cfg)]) == 0
    assert (ewc / "fisher.safetensors").is_file()
    b_merged = AutoPeftModelForCausalLM.from_pretrained(ewc / "final").merge_and_unload()
    c_start = AutoModelForCausalLM.from_pretrained(c_dir / "runs/run/start")
    with torch.no_grad():
        assert torch.allclose(c_start(ids).logits, b_merged(ids).logits, atol=1e-5)


def test_replay_mixes_the_earlier_task_into_each_step(tmp_path, tiny_llama_dir, task_a):
    run = _task_b(tmp_path, tiny_llama_dir, task_a, steps=8, replay={"ratio": 0.25})
    replayed = [m["replayed_rows"] for m in _metrics(run)]
    assert sum(replayed) == 8   # a quarter of 8 steps x 4 rows


def test_sigkill_then_resume_equals_uninterrupted_with_ewc_and_prioritized_replay(tmp_path, tiny_llama_dir, task_a):
    from tests.e2e.test_resume import kill_after_checkpoint

    data = _alpaca(tmp_path / "b.jsonl", QA[4:])
    sections = dict(train={**TRAIN, "max_steps": 16, "save_every": 4},
                    continual={"previous": [str(task_a)], "ewc": {"weight": 10.0, "fisher_samples": 4},
                               "l2sp": {"weight": 0.1},
                               "replay": {"ratio": 0.25, "prioritized": True, "refresh_every": 3}})
    killed = write_config(tmp_path / "killed", tiny_llama_dir, data, **sections)
    run = tmp_path / "killed/runs/run"
    kill_after_checkpoint(killed, run, step=8, timeout=120)
    assert main(["train", str(killed), "--resume"]) == 0   # in-process: only the killed run needs its own

    straight = write_config(tmp_path / "straight", tiny_llama_dir, data, **sections)
    assert main(["train", str(straight)]) == 0
    a = load_file(run / "final/adapter_model.safetensors")
    b = load_file(tmp_path / "straight/runs/run/final/adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    keys = ("step", "loss", "ewc_penalty", "l2sp_penalty", "replayed_rows")
    assert [tuple(m[k] for k in keys) for m in _metrics(run)] == \
        [tuple(m[k] for k in keys) for m in _metrics(tmp_path / "straight/runs/run")]
