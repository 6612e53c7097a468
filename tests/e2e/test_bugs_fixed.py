"""Errors a user met before the architecture change, each now one line that names the flag, key or file:line;
and resume that is safe to automate (nothing to resume yet; a damaged newest checkpoint)."""

import json
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from seektune.cli import main
from tests.conftest import QA, write_config

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("flag,value,message", [
    ("--near-threshold", "1.5", "--near-threshold: Input should be less than 1"),
    ("--normal-form", "XYZ", "--normal-form: Input should be 'NFKC', 'NFC', 'NFD', 'NFKD' or 'none'"),
    ("--min-chars", "many", "--min-chars: Input should be a valid integer"),
])
def test_clean_rejects_bad_option_values_naming_the_flag(tmp_path, capsys, flag, value, message):
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"text": "hello"}) + "\n")
    assert main(["data", "clean", str(data), "-o", str(tmp_path / "out.jsonl"), flag, value]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out.jsonl").exists()


def test_leakage_threshold_out_of_range_is_an_argument_error(tmp_path, capsys):
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"text": "hello"}) + "\n")
    with pytest.raises(SystemExit) as exit_:
        main(["data", "leakage", str(data), "--test", str(data), "--near-threshold", "1.5"])
    assert exit_.value.code == 2
    assert "--near-threshold: must be between 0 and 1" in capsys.readouterr().err


def test_eval_typo_hint_comes_from_the_eval_schema(tmp_path, capsys):
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump({"modles": [{"name": "a", "path": "x"}], "tasks": []}))
    assert main(["eval", str(path)]) == 2
    assert "modles: unknown key; did you mean 'models'?" in capsys.readouterr().err


def test_plain_lora_training_prints_no_bitsandbytes_kernel_warning(tmp_path, tiny_llama_dir, alpaca_file):
    cfg = write_config(tmp_path, tiny_llama_dir, alpaca_file, train={"max_steps": 1})
    done = subprocess.run([sys.executable, "-m", "seektune.cli", "train", str(cfg)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "gemm_4bit" not in done.stderr + done.stdout


def test_an_empty_answer_is_a_file_line_error_or_a_counted_skip(tmp_path, tiny_llama_dir, capsys):
    data = tmp_path / "train.jsonl"
    rows = [{"instruction": q, "output": a} for q, a in QA[:3]] + [{"instruction": "Blank?", "output": " "}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = write_config(tmp_path, tiny_llama_dir, data, train={"max_steps": 1})
    assert main(["train", str(cfg)]) == 2
    assert f"{data}:4: empty answer in turn 2" in capsys.readouterr().err
    assert main(["train", str(cfg), "data.on_error=skip", "output.overwrite=true"]) == 0
    report = json.loads((tmp_path / "runs/run/data_report.json").read_text())
    assert report["records_read"] == 3 and sum(report["records_skipped"].values()) == 1


def test_an_empty_data_file_is_named(tmp_path, tiny_llama_dir, capsys):
    data = tmp_path / "empty.jsonl"
    data.write_text("")
    cfg = write_config(tmp_path, tiny_llama_dir, data)
    assert main(["train", str(cfg)]) == 2
    assert f"{data}: no usable records (it is empty)" in capsys.readouterr().err


def test_resume_with_nothing_to_resume_starts_from_the_beginning(tmp_path, tiny_llama_dir, alpaca_file, capsys):
    cfg = write_config(tmp_path, tiny_llama_dir, alpaca_file, train={"max_steps": 2, "save_every": 1})
    assert main(["train", str(cfg), "--resume"]) == 0  # never started
    assert "nothing to resume" in capsys.readouterr().out
    run = tmp_path / "runs/run"
    (run / "final").rename(tmp_path / "first-final")
    for step in (run / "checkpoints").iterdir():  # killed before its first checkpoint
        import shutil

        shutil.rmtree(step)
    assert main(["train", str(cfg), "--resume"]) == 0
    assert "starting from the beginning" in capsys.readouterr().out
    a, b = load_file(run / "final/adapter_model.safetensors"), load_file(tmp_path / "first-final/adapter_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, tiny_llama_dir, alpaca_file, caplog):
    settings = dict(method={"name": "lora", "lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.2}},
                    train={"max_steps": 6, "save_every": 2, "keep_last": 2, "gradient_accumulation_steps": 2})
    straight = write_config(tmp_path / "straight", tiny_llama_dir, alpaca_file, **settings)
    assert main(["train", str(straight)]) == 0
    cfg = write_config(tmp_path / "cut", tiny_llama_dir, alpaca_file, **settings)
    assert main(["train", str(cfg)]) == 0
    run = tmp_path / "cut/runs/run"
    import shutil

    shutil.rmtree(run / "final")  # as if killed after the step-4 checkpoint, whose optimizer file is then cut short
    optim = run / "checkpoints/step-4/optim.pt"
    optim.write_bytes(optim.read_bytes()[: optim.stat().st_size // 2])
    with caplog.at_level("WARNING", logger="seektune.train"):
        assert main(["train", str(cfg), "--resume"]) == 0
    assert f"checkpoint step-4 is damaged ({optim} has" in caplog.text
    a = load_file(run / "final/adapter_model.safetensors")
    b = load_file(tmp_path / "straight/runs/run/final/adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tensorboard_tracking_records_loss_lr_and_eval(tmp_path, tiny_llama_dir, alpaca_file):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = write_config(tmp_path, tiny_llama_dir, alpaca_file,
                       train={"max_steps": 4, "report_to": ["tensorboard"], "eval_every": 2},
                       data={"eval_fraction": 0.25})
    assert main(["train", str(cfg)]) == 0
    run = tmp_path / "runs/run"
    events = EventAccumulator(str(next((run / "tracking").rglob("events.out.tfevents.*")).parent)).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss", "lr", "grad_norm", "supervised_tokens_per_s", "eval_loss"} <= tags
    logged = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [(r["step"], r["loss"]) for r in logged if "loss" in r]
    assert [(e.step, pytest.approx(e.value, rel=1e-6)) for e in events.Scalars("loss")] == losses
