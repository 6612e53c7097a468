"""LoRA throughput and memory: seektune vs a plain transformers Trainer + peft baseline, in one script.

Same model (packaged SmolLM2-135M-Instruct), same data (the clinic demo set, rendered by the same code so
the supervised tokens are identical), same LoRA (r=16, alpha=32, dropout 0.05, all-linear), same micro-batch
(4), max length (256), steps, learning rate and dtype. Each run is a child process of this script, so peak
memory is per run. Throughput counts supervised (non-padding, answer) tokens per second over the timed steps
(the first WARMUP steps are excluded from both).

Run: python bench/lora_vs_trainer.py [--steps 24]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 3
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"}
BATCH, MAX_LEN, LR = 4, 256, 1e-3
SYSTEM = "You are the assistant of Larkspur Valley Clinic. Answer in one sentence."  # as examples/clinic/lora.yaml


class PeakRSS:
    """Samples this process's resident memory every 20 ms; reports the peak above the starting point."""

    def __init__(self):
        self.proc, self.peak, self.stop = psutil.Process(), 0, threading.Event()

    def __enter__(self):
        self.start = self.proc.memory_info().rss
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def _data_file(tmp: Path) -> Path:
    """The clinic training set, repeated so every run sees fresh rows for all its steps."""
    lines = (ROOT / "examples/clinic/train.jsonl").read_text().splitlines()
    out = tmp / "train.jsonl"
    out.write_text("\n".join(lines * 12) + "\n")
    return out


def run_seektune(precision: str, steps: int, packing: bool, batch: int = BATCH) -> dict:
    from seektune import config
    from seektune.train.loop import train

    tmp = Path(tempfile.mkdtemp())
    cfg = config.load(None, [
        f"data.train={_data_file(tmp)}", f"data.max_length={MAX_LEN}", f"data.packing={str(packing).lower()}",
        f"data.system_prompt={SYSTEM}",
        *[f"method.lora.{k}={v}" for k, v in LORA.items()],
        f"train.max_steps={steps}", f"train.micro_batch_size={batch}", f"train.learning_rate={LR}",
        f"train.precision={precision}", "train.warmup_ratio=0.05", f"output.dir={tmp}", "output.name=run",
    ])
    with PeakRSS() as mem:
        train(cfg)
    rows = [json.loads(x) for x in (tmp / "run/metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    timed = rows[WARMUP:]
    seconds = timed[-1]["elapsed_s"] - rows[WARMUP - 1]["elapsed_s"]
    return {"tokens_per_s": sum(r["supervised_tokens"] for r in timed) / seconds, "peak_rss_mb": mem.peak / 2**20,
            "train_rss_increase_mb": (mem.peak - mem.start) / 2**20, "final_loss": rows[-1]["loss"]}


def padded_collator(tokenizer, counted: list[int]):
    """The Trainer baseline's batches: padded to the longest sample (multiple of 8); appends each batch's
    supervised tokens to `counted`."""
    from transformers import DataCollatorForSeq2Seq

    from seektune.data.render import IGNORE

    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE, pad_to_multiple_of=8)

    def collate(features):
        batch = collator(features)
        counted.append(int((batch["labels"][:, 1:] != IGNORE).sum()))
        return batch

    return collate


def run_trainer(precision: str, steps: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    from seektune.config import DataConfig
    from seektune.data.dataset import build
    from seektune.data.render import IGNORE
    from seektune.models.loading import resolve
    from seektune.runtime import set_threads

    set_threads()  # the same thread count seektune's loop picks
    tmp = Path(tempfile.mkdtemp())
    path = resolve("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(path)
    data = build(DataConfig(train=[str(_data_file(tmp))], max_length=MAX_LEN, packing=False, system_prompt=SYSTEM),
                 tokenizer, seed=0)
    rows = [{"input_ids": r.input_ids, "labels": [IGNORE] + r.targets[:-1]} for r in data.train]
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(path),
                           LoraConfig(task_type="CAUSAL_LM", **LORA))
    stamps: list[tuple[float, int]] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            stamps.append((time.perf_counter(), state.global_step))

    counted: list[int] = []
    collate = padded_collator(tokenizer, counted)
    args = TrainingArguments(output_dir=str(tmp / "out"), per_device_train_batch_size=BATCH, max_steps=steps,
                             learning_rate=LR, lr_scheduler_type="cosine", warmup_steps=int(0.05 * steps),
                             bf16=precision == "bf16",
                             use_cpu=not torch.cuda.is_available(), save_strategy="no", logging_strategy="no",
                             report_to=[], dataloader_num_workers=0, remove_unused_columns=False, seed=7)
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate, callbacks=[Clock()])
    with PeakRSS() as mem:
        trainer.train()
    seconds = stamps[-1][0] - stamps[WARMUP - 1][0]
    tokens = sum(counted[WARMUP:steps])
    return {"tokens_per_s": tokens / seconds, "peak_rss_mb": mem.peak / 2**20,
            "train_rss_increase_mb": (mem.peak - mem.start) / 2**20}


def child(kind: str, precision: str, steps: int) -> dict:
    if kind == "trainer":
        return run_trainer(precision, steps)
    if kind == "seektune-1row":  # one packed row of 256 ~ the baseline's padded token slots per step
        return run_seektune(precision, steps, packing=True, batch=1)
    return run_seektune(precision, steps, packing=kind == "seektune")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(*args.child, args.steps)), flush=True)
        return
    import torch

    from seektune.runtime import cpu_supports_fast_bf16

    results = {}
    plan = [("trainer", "fp32"), ("seektune", "fp32"), ("trainer", "bf16"), ("seektune", "bf16"),
            ("seektune-padded", "bf16"), ("seektune-1row", "bf16")]
    if not (torch.cuda.is_available() or cpu_supports_fast_bf16()):
        plan = plan[:2]
    for kind, precision in plan:
        print(f"running {kind} {precision} ...", flush=True)
        out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--child", kind, precision],
                             capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{kind} {precision} failed:\n{out.stderr[-3000:]}")
        results[(kind, precision)] = json.loads(line[7:])
    print(f"\nLoRA r=16 all-linear, SmolLM2-135M, batch {BATCH} x max {MAX_LEN}, {args.steps} steps "
          f"({WARMUP} warm-up steps not timed), supervised tokens/s\n")
    print(f"{'run':28s} {'tokens/s':>9s} {'peak RSS MB':>12s} {'RSS increase MB':>16s}")
    for (kind, precision), r in results.items():
        print(f"{kind + ' ' + precision:28s} {r['tokens_per_s']:9.1f} {r['peak_rss_mb']:12.0f} "
              f"{r['train_rss_increase_mb']:16.0f}")
    print()
    for precision in ("fp32", "bf16"):
        if ("seektune", precision) in results:
            s, t = results[("seektune", precision)], results[("trainer", precision)]
            print(f"same dtype {precision}: speed ratio {s['tokens_per_s'] / t['tokens_per_s']:.2f}x, "
                  f"peak memory ratio {s['peak_rss_mb'] / t['peak_rss_mb']:.2f}")
    default = ("seektune", "bf16") if ("seektune", "bf16") in results else ("seektune", "fp32")
    s, t = results[default], results[("trainer", "fp32")]
    print(f"defaults (seektune {default[1]} auto vs Trainer fp32): speed ratio "
          f"{s['tokens_per_s'] / t['tokens_per_s']:.2f}x, peak memory ratio {s['peak_rss_mb'] / t['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
