"""LoRA on a random-init Qwen2-shaped model: seektune's loop vs transformers Trainer + peft, same settings.

Built for a GPU: `--size 1.5b` is Qwen2-1.5B's shape (built from a config, random weights, nothing downloaded),
2,048-token packed rows, bf16, SDPA attention (`--attention flash_attention_2` where flash-attn is installed).
Both sides get the same packed rows (position_ids restart at every sample, so transformers masks attention
block-diagonally for both), the same LoRA (r 16, alpha 32, dropout 0, every linear layer), micro-batch,
learning rate and steps. Each side runs in its own usual bf16 setup: the Trainer keeps fp32 weights under
autocast (bf16=True), seektune stores the frozen base in bf16 (its default, train.frozen_dtype=auto). Each side
runs in its own child process; the first WARMUP steps are not timed.

Prints tokens/s (every token of the rows), supervised tokens/s, peak memory (GPU: torch's peak allocated;
CPU: peak RSS) and MFU = FLOPs per token x tokens/s / the device's peak bf16 FLOP/s, with FLOPs per token
= 4 x frozen matmul weights (forward + the input gradients) + 6 x trainable weights + 12 x layers x attention
width x row length (PaLM's attention count). `--size tiny` runs the same code on CPU in seconds (the CI test).

Run: python bench/gpu.py [--size 1.5b|tiny] [--steps 20] [--micro-batch 4] [--peak-tflops 989]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lora_vs_trainer import PeakRSS  # noqa: E402  (bench/ is a folder of scripts, not a package)

WARMUP = 2
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": "all-linear"}
LR = 2e-4
SHAPES = {
    "1.5b": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
             "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
             "rope_theta": 1e6, "tie_word_embeddings": True},
    "tiny": {"hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": 49152, "max_position_embeddings": 1024,
             "tie_word_embeddings": True},
}
MAX_LENGTH = {"1.5b": 2048, "tiny": 128}
# dense bf16 tensor-core peaks (NVIDIA's datasheets, SXM parts)
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}
WORDS = ("contract clause tenant landlord deposit notice term breach remedy damages court filing statute "
         "article party duty consent period payment interest liability").split()


def qwen2_config(size: str):
    from transformers import Qwen2Config

    return Qwen2Config(**SHAPES[size])


def flops_per_token(config, trainable: int, row_length: int) -> float:
    """Training FLOPs per token: frozen matmuls forward + input gradients (4 per weight), trainable weights
    forward + both gradients (6), attention scores and values forward and backward (12 x layers x width x T)."""
    h, layers = config.hidden_size, config.num_hidden_layers
    head_dim = h // config.num_attention_heads
    kv = config.num_key_value_heads * head_dim
    per_layer = h * h + 2 * h * kv + h * h + 3 * h * config.intermediate_size   # q, k, v, o, gate, up, down
    frozen = layers * per_layer + config.vocab_size * h                          # the head is a matmul too
    return 4 * frozen + 6 * trainable + 12 * layers * config.num_attention_heads * head_dim * row_length


def _model_dir(size: str, tmp: Path) -> Path:
    """Random weights of the shape, saved in bf16 with the packaged SmolLM2 tokenizer (its ids fit the vocab)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from seektune.models.loading import resolve

    tokenizer = AutoTokenizer.from_pretrained(resolve("smollm2-135m-instruct"))
    config = qwen2_config(size)
    config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    out = tmp / f"qwen2-{size}-random"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _data_file(size: str, steps: int, micro_batch: int, tmp: Path) -> Path:
    """Synthetic alpaca records, prompts of 1/32-1/8 and answers of 1/16-1/3 of the row length, enough for
    every step to see new rows."""
    rng, length = random.Random(0), MAX_LENGTH[size]
    total = steps * micro_batch * length
    lines, tokens = [], 0
    while tokens < 1.3 * total:
        prompt = " ".join(rng.choices(WORDS, k=rng.randint(length // 32, length // 8)))
        answer = " ".join(rng.choices(WORDS, k=rng.randint(length // 16, length // 3)))
        lines.append(json.dumps({"instruction": prompt, "output": answer}))
        tokens += len(prompt.split()) + len(answer.split()) + 20
    out = tmp / "train.jsonl"
    out.write_text("\n".join(lines) + "\n")
    return out


def _settings(args) -> tuple[Path, Path]:
    tmp = Path(args.work)
    return tmp / f"qwen2-{args.size}-random", tmp / "train.jsonl"


def _peak_memory(mem: PeakRSS | None) -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return mem.peak / 2**20


def run_seektune(args) -> dict:
    from seektune import config
    from seektune.train.loop import train

    model, data = _settings(args)
    out = Path(tempfile.mkdtemp(dir=args.work))
    cfg = config.load(None, [
        f"model.name_or_path={model}", f"model.attn_implementation={args.attention}",
        f"data.train={data}", f"data.max_length={MAX_LENGTH[args.size]}", "data.packing=true",
        *[f"method.lora.{k}={v}" for k, v in LORA.items()],
        f"train.max_steps={args.steps}", f"train.micro_batch_size={args.micro_batch}", f"train.learning_rate={LR}",
        f"train.precision={args.precision}", "train.warmup_ratio=0", "train.lr_scheduler=linear",
        f"output.dir={out}", "output.name=run"])
    with PeakRSS() as mem:
        train(cfg)
    rows = [json.loads(x) for x in (out / "run/metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    report = json.loads((out / "run/data_report.json").read_text())
    seconds = rows[-1]["elapsed_s"] - rows[WARMUP - 1]["elapsed_s"]
    supervised = sum(r["supervised_tokens"] for r in rows[WARMUP:])
    # packed rows are nearly full: every token of a timed step, from the data report's tokens per row
    tokens = (args.steps - WARMUP) * args.micro_batch * report["train_tokens"] / report["train_rows"]
    return {"tokens_per_s": tokens / seconds, "supervised_tokens_per_s": supervised / seconds,
            "peak_memory_mb": _peak_memory(mem), "first_loss": rows[0]["loss"], "final_loss": rows[-1]["loss"],
            "trainable": _trainable(out / "run/result.json")}


def _trainable(result: Path) -> int:
    return int(json.loads(result.read_text())["trainable_parameters"])


def run_trainer(args) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    from seektune.config import DataConfig
    from seektune.data.dataset import build
    from seektune.data.render import IGNORE
    from seektune.runtime import set_threads

    set_threads()
    model_dir, data = _settings(args)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = build(DataConfig(train=[str(data)], max_length=MAX_LENGTH[args.size], packing=True), tokenizer,
                 seed=42).train
    bf16 = args.precision == "bf16" or (args.precision == "auto" and _fast_bf16())
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=args.attention)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA))
    counted: list[tuple[int, int]] = []

    def collate(batch):
        width = max(len(r.input_ids) for r in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), IGNORE)
        positions = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):
            n = len(r.input_ids)
            ids[i, :n], positions[i, :n] = torch.tensor(r.input_ids), torch.tensor(r.position_ids)
            labels[i, :n] = torch.tensor([IGNORE] + r.targets[:-1])   # the model shifts labels itself
        counted.append((sum(len(r.input_ids) for r in batch), sum(r.supervised for r in batch)))
        return {"input_ids": ids, "labels": labels, "position_ids": positions}

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **kw):
            stamps.append(time.perf_counter())

    losses: list[float] = []

    class Losses(TrainerCallback):
        def on_log(self, _args, _state, _control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    targs = TrainingArguments(output_dir=str(Path(args.work) / "trainer"), per_device_train_batch_size=args.micro_batch,
                              max_steps=args.steps, learning_rate=LR, lr_scheduler_type="linear", warmup_steps=0,
                              bf16=bf16, use_cpu=not torch.cuda.is_available(), save_strategy="no",
                              logging_steps=1, report_to=[], dataloader_num_workers=0, remove_unused_columns=False,
                              seed=42, disable_tqdm=True)
    trainer = Trainer(model=model, args=targs, train_dataset=rows, data_collator=collate, callbacks=[Clock(), Losses()])
    with PeakRSS() as mem:
        trainer.train()
    seconds = stamps[-1] - stamps[WARMUP - 1]
    timed = counted[WARMUP:args.steps]
    return {"tokens_per_s": sum(t for t, _ in timed) / seconds,
            "supervised_tokens_per_s": sum(s for _, s in timed) / seconds, "peak_memory_mb": _peak_memory(mem),
            "first_loss": losses[0], "final_loss": losses[-1],
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def _fast_bf16() -> bool:
    import torch

    from seektune.runtime import cpu_supports_fast_bf16

    return torch.cuda.is_available() or cpu_supports_fast_bf16()


def _peak_flops(args) -> float | None:
    if args.peak_tflops:
        return args.peak_tflops * 1e12
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((tf * 1e12 for key, tf in PEAK_TFLOPS.items() if key in name), None)


def _child(kind: str, args) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--size", args.size, "--steps", str(args.steps),
               "--micro-batch", str(args.micro_batch), "--precision", args.precision, "--attention", args.attention,
               "--work", args.work]
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"{kind} failed:\n{done.stderr[-4000:]}")
    return json.loads(line[7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SHAPES), default="1.5b")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="bf16")
    parser.add_argument("--attention", choices=["sdpa", "flash_attention_2", "eager"], default="sdpa")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak (default: by GPU name)")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repetitions of both sides")
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["seektune", "trainer"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps <= WARMUP:
        parser.error(f"--steps must be more than the {WARMUP} warm-up steps")
    if args.child:
        print("RESULT " + json.dumps(run_seektune(args) if args.child == "seektune" else run_trainer(args)),
              flush=True)
        return
    args.work = args.work or tempfile.mkdtemp(prefix="seektune-gpu-bench-")
    print(f"building a random Qwen2-{args.size} and its data in {args.work} ...", flush=True)
    _model_dir(args.size, Path(args.work))
    _data_file(args.size, args.steps, args.micro_batch, Path(args.work))
    runs: dict[str, list[dict]] = {"trainer": [], "seektune": []}
    for _ in range(args.repeats):
        for kind in runs:
            print(f"running {kind} ...", flush=True)
            runs[kind].append(_child(kind, args))
    print(json.dumps(_summary(args, runs)))


def _summary(args, runs: dict[str, list[dict]]) -> dict:
    config, peak = qwen2_config(args.size), _peak_flops(args)
    length = MAX_LENGTH[args.size]
    best = {k: max(v, key=lambda r: r["tokens_per_s"]) for k, v in runs.items()}
    print(f"\nLoRA r16 all-linear on random Qwen2-{args.size}, {args.micro_batch} x {length}-token packed rows, "
          f"{args.precision}, {args.attention}, {args.steps} steps ({WARMUP} not timed), best of {args.repeats}\n")
    print(f"{'run':10s} {'tokens/s':>10s} {'supervised/s':>13s} {'peak MB':>9s} {'MFU':>7s} {'loss':>15s}")
    for kind, r in best.items():
        r["mfu"] = flops_per_token(config, r["trainable"], length) * r["tokens_per_s"] / peak if peak else None
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        print(f"{kind:10s} {r['tokens_per_s']:10.1f} {r['supervised_tokens_per_s']:13.1f} "
              f"{r['peak_memory_mb']:9.0f} {mfu:>7s} {r['first_loss']:6.3f} -> {r['final_loss']:6.3f}")
    s, t = best["seektune"], best["trainer"]
    speed, memory = s["tokens_per_s"] / t["tokens_per_s"], s["peak_memory_mb"] / t["peak_memory_mb"]
    print(f"\nseektune / Trainer: {speed:.2f}x tokens/s, {memory:.2f}x peak memory"
          + ("" if peak else "  (MFU needs --peak-tflops off a known GPU)"))
    return {"RESULTS": runs, "speed_ratio": speed, "memory_ratio": memory, "mfu": {k: r["mfu"] for k, r in best.items()}}


if __name__ == "__main__":
    main()
