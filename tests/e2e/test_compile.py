"""`train.compile`: where the decoder layers are compiled, and that a compiled run trains like an eager one
(same losses within bf16 rounding, evaluation on the eager layers, the same adapter saved)."""

import json
import shutil

import pytest
import torch

from seektune.cli import main
from seektune.config import load
from seektune.errors import ConfigError
from seektune.train.compile import should_compile
from tests.conftest import make_tiny_llama, write_config

CPU = torch.device("cpu")
BIG, LONG = 135_000_000, 100


def _cfg(tmp_path, *overrides):
    data = tmp_path / "d.jsonl"
    data.write_text("")
    return load(None, [f"data.train=[{data}]", *overrides])


@pytest.mark.parametrize("overrides, device, processes, vision, params, steps, expected", [
    ([], CPU, 1, False, BIG, LONG, "on (auto)"),
    ([], CPU, 1, False, 1_000_000, LONG, "off (auto compiles models of 100M+"),   # a tiny model: not worth it
    ([], CPU, 1, False, BIG, 12, "off (auto compiles models of 100M+"),           # a short run
    ([], torch.device("cuda"), 1, False, BIG, LONG, "off (it runs on cuda"),
    ([], CPU, 2, False, BIG, LONG, "off (it runs in several processes"),
    (["train.gradient_checkpointing=true"], CPU, 1, False, BIG, LONG, "off (train.gradient_checkpointing"),
    (["method.name=qlora"], CPU, 1, False, BIG, LONG, "off (method.name is qlora"),
    (["objective.name=dpo"], CPU, 1, False, BIG, LONG, "off (objective.name is dpo"),
    ([], CPU, 1, True, BIG, LONG, "off (the model is a vision-language model"),
    (["train.compile=false"], CPU, 1, False, BIG, LONG, "off"),
    (["train.compile=true"], CPU, 1, False, 1_000_000, 2, "on"),
])
def test_where_the_layers_are_compiled(tmp_path, monkeypatch, overrides, device, processes, vision, params, steps,
                                       expected):
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    cfg = _cfg(tmp_path, *overrides)
    compiled, line = should_compile(cfg, device, processes, vision, params, steps)
    assert line.startswith(expected) and compiled == line.startswith("on")


def test_compile_true_where_it_cannot_names_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="train.compile: true, but no C.. compiler is installed"):
        should_compile(_cfg(tmp_path, "train.compile=true"), CPU, 1, False, BIG, LONG)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    with pytest.raises(ConfigError, match="train.compile: true, but train.gradient_checkpointing is on"):
        should_compile(_cfg(tmp_path, "train.compile=true", "train.gradient_checkpointing=true"), CPU, 1, False,
                       BIG, LONG)


def _losses(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r], [r["eval_loss"] for r in rows if "eval_loss" in r]


@pytest.mark.skipif(not shutil.which("g++"), reason="inductor needs a C++ compiler")
def test_a_compiled_run_trains_like_an_eager_one(tmp_path, tiny_tokenizer, alpaca_file):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    # one layer: one graph to compile (a first layer, whose input needs no gradient, is a graph of its own), so
    # the test pays for one cold compile
    model_dir = make_tiny_llama(tmp_path / "model", tiny_tokenizer, layers=1)
    runs = {}
    for compiled in (False, True):
        cfg = write_config(tmp_path / str(compiled), model_dir, alpaca_file,
                           data={"eval": [str(alpaca_file)]},
                           train={"precision": "bf16", "compile": compiled, "max_steps": 5, "learning_rate": 1e-2})
        assert main(["train", str(cfg)]) == 0
        runs[compiled] = tmp_path / str(compiled) / "runs" / "run"
        assert json.loads((runs[compiled] / "result.json").read_text())["compiled_layers"] is compiled
    (eager, eager_eval), (comp, comp_eval) = _losses(runs[False]), _losses(runs[True])
    assert comp[-1] < comp[0]
    assert max(abs(a - b) / b for a, b in zip(comp, eager)) < 0.02, (comp, eager)
    assert abs(comp_eval[0] - eager_eval[0]) / eager_eval[0] < 0.02
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), runs[True] / "final")
    assert sum("lora_" in n for n, _ in model.named_parameters()) == 1 * 7 * 2
