"""AdaLoRA's rank budget is reallocated by the loop during training, and its allocator state resumes exactly."""

import json
import shutil

from safetensors.torch import load_file

from seektune.config import load
from seektune.train.loop import train
from tests.conftest import write_config

ADALORA = {"name": "adalora", "lora": {"lora_alpha": 16, "lora_dropout": 0.0},
           "adalora": {"init_r": 6, "target_r": 2, "tinit": 0.1, "tfinal": 0.2}}


def test_budget_is_reallocated_unevenly_to_the_target_average(tmp_path, tiny_llama_dir, alpaca_file):
    cfg = write_config(tmp_path, tiny_llama_dir, alpaca_file, method=ADALORA,
                       train={"max_steps": 10, "learning_rate": 5e-2})
    run = train(load(cfg))
    ranks = json.loads((run / "result.json").read_text())["adalora_final_ranks"]
    assert len(ranks) == 14  # 7 projections x 2 layers
    assert sum(ranks.values()) == 2 * 14  # the budget: target_r per matrix on average
    assert len(set(ranks.values())) > 1 and max(ranks.values()) > 2  # moved between matrices, not uniform
    # the saved adapter carries the budget: pruned singular values are zero, and peft records the pattern
    weights = load_file(run / "final/adapter_model.safetensors")
    for name, kept in ranks.items():
        assert int((weights[f"base_model.model.{name}"] != 0).sum()) <= kept
    assert json.loads((run / "final/adapter_config.json").read_text())["rank_pattern"]


def test_resume_restores_the_allocator_state(tmp_path, tiny_llama_dir, alpaca_file):
    straight = write_config(tmp_path / "a", tiny_llama_dir, alpaca_file, method=ADALORA,
                            train={"max_steps": 10, "learning_rate": 5e-2})
    reference = load_file(train(load(straight)) / "final/adapter_model.safetensors")
    resumed_cfg = write_config(tmp_path / "b", tiny_llama_dir, alpaca_file, method=ADALORA,
                               train={"max_steps": 10, "learning_rate": 5e-2, "save_every": 5})
    run = train(load(resumed_cfg))
    shutil.rmtree(run / "final")  # as if the run died after the step-5 checkpoint
    train(load(resumed_cfg), resume=True)
    resumed = load_file(run / "final/adapter_model.safetensors")
    assert resumed.keys() == reference.keys()
    for k in reference:
        assert (resumed[k] == reference[k]).all(), k
