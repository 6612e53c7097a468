"""Several adapters on one base: list, pick one for generation, combine (linear/TIES/DARE), merge."""

import json

import pytest
import torch

from seektune.cli import main
from tests.conftest import QA, write_config


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_llama_dir):
    root = tmp_path_factory.mktemp("adapters")
    runs = []
    for name, answer in (("clinic", None), ("amber", "Code Amber.")):
        data = root / f"{name}.jsonl"
        data.write_text("".join(json.dumps({"instruction": q, "input": "", "output": answer or a}) + "\n"
                                for q, a in QA))
        cfg = write_config(root / name, tiny_llama_dir, data, train={"max_steps": 12, "learning_rate": 2e-2},
                           output={"dir": str(root / "runs"), "name": name})
        assert main(["train", str(cfg)]) == 0
        runs.append(root / "runs" / name)
    return runs


def _logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits


def test_list_finds_both_adapters(two_runs, capsys):
    assert main(["adapters", "list", str(two_runs[0].parent)]) == 0
    out = capsys.readouterr().out
    assert "clinic" in out and "amber" in out and out.count("lora") >= 2 and "r=4" in out


def test_switching_adapters_on_one_base_matches_loading_each_alone(two_runs):
    from seektune.artifacts import load_many
    from seektune.artifacts import load_for_inference

    both, names = load_many(two_runs)
    assert names == ["clinic", "amber"]
    ids = [5, 17, 42, 8, 99, 3]
    for run, name in zip(two_runs, names):
        both.set_adapter(name)
        alone, _ = load_for_inference(str(run))
        torch.testing.assert_close(_logits(both, ids), _logits(alone, ids))
    both.set_adapter("clinic")
    first = _logits(both, ids)
    both.set_adapter("amber")
    assert not torch.allclose(first, _logits(both, ids))  # the two adapters really differ


def test_chat_generates_with_the_chosen_adapter(two_runs, capsys):
    assert main(["chat", *map(str, two_runs), "--use", "amber", "--prompt", "Which days?",
                 "--max-new-tokens", "4"]) == 0
    assert "adapter: amber" in capsys.readouterr().out
    assert main(["chat", *map(str, two_runs), "--use", "nope", "--prompt", "x"]) == 2
    assert "no adapter named 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("method,density", [("linear", None), ("cat", None), ("ties", 0.5), ("dare_linear", 0.5)])
def test_combined_adapter_is_a_plain_peft_adapter(two_runs, tmp_path, tiny_llama_dir, method, density):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    args = ["adapters", "combine", *map(str, two_runs), "--out", str(tmp_path / "mix"), "--method", method,
            "--weights", "0.7", "0.3"] + (["--density", str(density)] if density else [])
    assert main(args) == 0
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), tmp_path / "mix")
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    ids = [5, 17, 42, 8]
    assert not torch.allclose(_logits(model, ids), _logits(base, ids))
    assert json.loads((tmp_path / "mix/seektune_method.json").read_text())["combination"] == method
    if method == "cat":
        # concatenating the ranks gives exactly the weighted sum of the weight deltas: sum w_i * s_i * B_i A_i
        from safetensors.torch import load_file

        def delta(directory):
            cfg = json.loads((directory / "adapter_config.json").read_text())
            weights = load_file(directory / "adapter_model.safetensors")
            a = next(k for k in weights if "layers.0.self_attn.q_proj.lora_A" in k)
            return cfg["lora_alpha"] / cfg["r"] * weights[a.replace("lora_A", "lora_B")] @ weights[a]

        expected = 0.7 * delta(two_runs[0] / "final") + 0.3 * delta(two_runs[1] / "final")
        torch.testing.assert_close(delta(tmp_path / "mix"), expected, atol=1e-6, rtol=1e-4)


def test_ties_needs_a_density(two_runs, tmp_path, capsys):
    assert main(["adapters", "combine", *map(str, two_runs), "--out", str(tmp_path / "x"), "--method", "ties"]) == 2
    assert "--density is required" in capsys.readouterr().err


def test_the_ui_chat_switches_adapters_without_loading_again(two_runs):
    from seektune.inference.session import ChatSession
    from seektune.ui.project import Project
    from seektune.ui.tabs.chat_tab import Sessions

    project = Project(two_runs[0].parents[1])
    sessions = Sessions(project)
    names = [f"runs/{run.name}" for run in two_runs]
    for run, adapter in zip(two_runs, ("clinic", "amber")):
        answer, session = sessions.answer(names, QA[0][0], adapter, max_new_tokens=8)
        assert session.active == adapter and answer == ChatSession.open([str(run)], max_new_tokens=8).ask(QA[0][0])
    assert len(sessions.open) == 1   # one base, both adapters: loaded once, switched in place
