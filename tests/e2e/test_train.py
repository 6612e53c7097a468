"""The real `seektune train` on tiny in-process models: artifacts, numbers, and standard formats."""

import json

import pytest
import torch
from safetensors.torch import load_file

from seektune.cli import main
from tests.conftest import write_config


def run_cli(*args) -> int:
    return main([str(a) for a in args])


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_lora_run_loss_falls_and_writes_a_standard_peft_adapter(tmp_path, tiny_llama_dir, alpaca_file):
    cfg = write_config(tmp_path, tiny_llama_dir, alpaca_file, train={"max_steps": 24, "learning_rate": 1e-2},
                       method={"name": "lora", "lora": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0}})
    assert run_cli("train", cfg) == 0
    run = tmp_path / "runs" / "run"
    for name in ("config.yaml", "metrics.jsonl", "loss.png", "result.json", "data_report.json",
                 "final/adapter_config.json", "final/adapter_model.safetensors", "final/tokenizer.json"):
        assert (run / name).is_file(), name
    losses = [m["loss"] for m in metrics(run) if "loss" in m]
    assert len(losses) == 24 and sum(losses[-3:]) / 3 < 0.9 * sum(losses[:3]) / 3  # random tiny model: slow
    assert all({"lr", "supervised_tokens_per_s", "grad_norm"} <= set(m) for m in metrics(run) if "loss" in m)

    # loadable by plain transformers + peft, without seektune
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    model = PeftModel.from_pretrained(base, run / "final").eval()
    tok = AutoTokenizer.from_pretrained(run / "final")
    ids = tok("Which days?", return_tensors="pt")
    assert model.generate(**ids, max_new_tokens=3, do_sample=False).shape[1] == ids["input_ids"].shape[1] + 3


def test_accumulation_is_normalised_by_supervised_tokens(tmp_path, tiny_llama_dir, alpaca_file):
    """4 rows in one micro-batch == the same 4 rows as 2 x 2 accumulated: identical update."""
    finals = []
    for name, mb, acc in (("one", 4, 1), ("two", 2, 2)):
        cfg = write_config(tmp_path / name, tiny_llama_dir, alpaca_file,
                           data={"packing": False}, train={"max_steps": 1, "micro_batch_size": mb,
                                                           "gradient_accumulation_steps": acc})
        assert run_cli("train", cfg) == 0
        finals.append(load_file(tmp_path / name / "runs/run/final/adapter_model.safetensors"))
    assert finals[0].keys() == finals[1].keys()
    for k in finals[0]:
        torch.testing.assert_close(finals[0][k], finals[1][k], atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("method", ["full", "freeze"])
def test_full_and_freeze_write_a_full_hf_model(tmp_path, tiny_llama_dir, alpaca_file, method):
    cfg = write_config(tmp_path, tiny_llama_dir, alpaca_file, method={"name": method},
                       train={"max_steps": 8, "learning_rate": 3e-3})
    assert run_cli("train", cfg) == 0
    final = tmp_path / "runs/run/final"
    from transformers import AutoModelForCausalLM

    tuned = AutoModelForCausalLM.from_pretrained(final)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    changed = {n for (n, a), (_, b) in zip(tuned.named_parameters(), base.named_parameters()) if not torch.equal(a, b)}
    if method == "freeze":  # default: last 2 layers (= all of this tiny model's) + norm + head, not embeddings
        assert "model.embed_tokens.weight" not in changed and "lm_head.weight" in changed
    else:
        assert "model.embed_tokens.weight" in changed
    losses = [m["loss"] for m in metrics(tmp_path / "runs/run") if "loss" in m]
    assert losses[-1] < losses[0]


def test_early_stopping_stops_when_eval_loss_does_not_improve(tmp_path, tiny_llama_dir, alpaca_file):
    cfg = write_config(tmp_path, tiny_llama_dir, alpaca_file,
                       data={"eval_fraction": 0.25},
                       train={"max_steps": 50, "learning_rate": 1e-12, "eval_every": 1, "early_stopping_patience": 2})
    assert run_cli("train", cfg) == 0
    result = json.loads((tmp_path / "runs/run/result.json").read_text())
    assert result["stopped_early"] and result["steps"] == 3
    assert len([m for m in metrics(tmp_path / "runs/run") if "eval_loss" in m]) == 4  # 3 periodic + final


def test_tiny_deepseek_v3_trains_with_the_deepseek_preset(tmp_path, alpaca_file):
    cfg = write_config(tmp_path, "tiny-deepseek-v3", alpaca_file,
                       method={"name": "lora", "lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
                                                        "target_modules": "deepseek"}},
                       train={"max_steps": 10, "learning_rate": 2e-2})
    assert run_cli("train", cfg) == 0
    run = tmp_path / "runs/run"
    losses = [m["loss"] for m in metrics(run) if "loss" in m]
    assert losses[-1] < losses[0]
    adapter = json.loads((run / "final/adapter_config.json").read_text())
    assert "kv_b_proj" in adapter["target_modules"] and adapter["target_parameters"]


def test_cli_reports_config_errors_without_traceback(tmp_path, tiny_llama_dir, alpaca_file, capsys):
    cfg = write_config(tmp_path, tiny_llama_dir, alpaca_file)
    assert run_cli("train", cfg, "train.lr=1") == 2
    err = capsys.readouterr().err
    assert "train.lr: unknown key" in err and "Traceback" not in err


def test_existing_run_is_not_overwritten_by_accident(tmp_path, tiny_llama_dir, alpaca_file, capsys):
    cfg = write_config(tmp_path, tiny_llama_dir, alpaca_file, train={"max_steps": 1})
    assert run_cli("train", cfg) == 0
    assert run_cli("train", cfg) == 2
    assert "already exists" in capsys.readouterr().err
    assert run_cli("train", cfg, "output.overwrite=true") == 0


def test_bad_data_line_stops_with_file_and_line(tmp_path, tiny_llama_dir, alpaca_file, capsys):
    alpaca_file.write_text(alpaca_file.read_text() + '{"instruction": "q"\n')
    cfg = write_config(tmp_path, tiny_llama_dir, alpaca_file)
    assert run_cli("train", cfg) == 2
    assert f"{alpaca_file}:9: invalid JSON" in capsys.readouterr().err
    assert run_cli("train", cfg, "data.on_error=skip", "output.overwrite=true") == 0
    report = json.loads((tmp_path / "runs/run/data_report.json").read_text())
    assert report["records_read"] == 8 and sum(report["records_skipped"].values()) == 1


def test_gradient_checkpointing_gives_the_same_update(tmp_path, tiny_llama_dir, alpaca_file):
    finals = []
    for name, flag in (("plain", False), ("ckpt", True)):
        cfg = write_config(tmp_path / name, tiny_llama_dir, alpaca_file,
                           train={"max_steps": 2, "gradient_checkpointing": flag})
        assert run_cli("train", cfg) == 0
        finals.append(load_file(tmp_path / name / "runs/run/final/adapter_model.safetensors"))
    for k in finals[0]:
        torch.testing.assert_close(finals[0][k], finals[1][k], atol=1e-6, rtol=1e-5)


def test_chinese_demo_is_skipped_with_a_clear_message_without_the_extra(capsys):
    from pathlib import Path

    from seektune.models.registry import PACKAGED

    if PACKAGED["qwen2.5-coder-0.5b-instruct"].available():
        pytest.skip("the Qwen extra is installed; the demo would train for minutes")
    zh = Path(__file__).resolve().parents[2] / "examples/clinic-zh"
    assert run_cli("demo", zh / "lora.yaml", "--heldout", zh / "heldout.jsonl") == 0
    assert "skipped: qwen2.5-coder-0.5b-instruct is not installed (optional: pip install" in capsys.readouterr().out


def test_term_weights_label_smoothing_and_dropout_reach_the_run(tmp_path, tiny_llama_dir, alpaca_file):
    terms = tmp_path / "terms.txt"
    terms.write_text("blood draw\nCode Amber\n")
    cfg = write_config(tmp_path, tiny_llama_dir, alpaca_file, method={"name": "full"},
                       model={"dropout": 0.1}, train={"term_file": str(terms), "term_weight": 2.0,
                                                      "label_smoothing": 0.1, "max_steps": 2})
    assert run_cli("train", cfg) == 0
    run = tmp_path / "runs" / "run"
    report = json.loads((run / "data_report.json").read_text())
    assert report["term_weighted_tokens"] >= 4  # "blood draw" and "Code Amber" occur in three answers
    assert json.loads((run / "final/config.json").read_text())["attention_dropout"] == 0.1
