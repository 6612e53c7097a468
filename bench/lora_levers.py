"""Issue 15's CPU job: seektune's LoRA defaults vs transformers Trainer + peft, and what each lever gives.

The job: packaged SmolLM2-135M-Instruct, 2,000 synthetic alpaca records (prompt + answer 42-731 tokens, median
about 170), a system prompt, LoRA r16/alpha 32/dropout 0 on every linear layer, micro-batch 4, max length 512,
lr 2e-4 linear without warmup, seed 42, bf16 autocast on both sides, the cores this machine has. The Trainer
pads each batch to its longest sample (DataCollatorForSeq2Seq); seektune runs its defaults, then one lever
changed at a time. Each run is its own child process (peak RSS sampled every 20 ms over the whole process);
the runs are interleaved `--repeats` times, since identical runs here differ by up to 15%; the first WARMUP
steps are not timed.

Run: python bench/lora_levers.py [--steps 30] [--repeats 2] [--only glibc jemalloc]

`wall s` is the whole child process: imports, model load, the first compile (inductor's cache is
cleared before each run, so every compile is a cold one), all steps and the final save.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lora_vs_trainer import PeakRSS, padded_collator  # noqa: E402  (bench/ is a folder of scripts, not a package)

WARMUP = 2
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": "all-linear"}
BATCH, MAX_LEN, LR = 4, 512, 2e-4
SYSTEM = "You are a careful assistant for a legal aid clinic. Answer plainly and cite the rule you rely on."
WORDS = ("tenant landlord deposit notice lease term breach remedy damages court filing statute article party "
         "duty consent period payment interest liability contract clause evidence appeal hearing judge rent "
         "repair month written agreement employer wage overtime dismissal compensation").split()
# (name, seektune overrides, extra environment); "trainer" is the baseline
VARIANTS = {
    "trainer": ([], {}),
    "seektune defaults": ([], {}),
    "compiled, inductor's own saved set (train.compile_memory_budget=1)": (["train.compile_memory_budget=1"], {}),
    "eager layers (train.compile=false)": (["train.compile=false"], {}),
    "eager, all logits at once (train.compile=false train.chunked_loss=false)": (
        ["train.compile=false", "train.chunked_loss=false"], {}),
    "frozen base in fp32 (train.frozen_dtype=fp32)": (["train.frozen_dtype=fp32"], {}),
    "padded like the Trainer (data.packing=false)": (["data.packing=false"], {}),
    "glibc malloc (SEEKTUNE_ALLOCATOR=system)": ([], {"SEEKTUNE_ALLOCATOR": "system"}),
    "glibc + MALLOC_MMAP_THRESHOLD_=131072": ([], {"SEEKTUNE_ALLOCATOR": "system",
                                                   "MALLOC_MMAP_THRESHOLD_": "131072"}),
    "jemalloc (LD_PRELOAD)": ([], {"LD_PRELOAD": "libjemalloc.so.2"}),
}
# where Debian's libjemalloc2 puts it (apt-get install libjemalloc2)
LIBDIR = Path("/usr/lib/x86_64-linux-gnu")


def data_file(out: Path) -> Path:
    """Records whose prompt + answer run 42-731 tokens, log-normal around 170 (about 1.3 tokens a word)."""
    rng, lines = random.Random(42), []
    for _ in range(2000):
        tokens = min(731, max(42, int(rng.lognormvariate(math.log(170), 0.55))))
        words = max(4, int(tokens / 1.3))
        prompt = max(2, int(words * rng.uniform(0.15, 0.45)))
        lines.append(json.dumps({"instruction": " ".join(rng.choices(WORDS, k=prompt)),
                                 "output": " ".join(rng.choices(WORDS, k=words - prompt))}))
    path = out / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def job_overrides(work: Path) -> list[str]:
    """The job's data, LoRA, micro-batch and dtype as seektune settings (the rest is per script)."""
    return [f"data.train={work / 'train.jsonl'}", f"data.max_length={MAX_LEN}", f"data.system_prompt={SYSTEM}",
            *[f"method.lora.{k}={v}" for k, v in LORA.items()], f"train.micro_batch_size={BATCH}",
            "train.precision=bf16"]


def run_seektune(work: Path, steps: int, overrides: list[str]) -> dict:
    from seektune import config
    from seektune.train.loop import train

    out = Path(tempfile.mkdtemp(dir=work))
    cfg = config.load(None, [
        *job_overrides(work), f"train.max_steps={steps}", f"train.learning_rate={LR}", "train.warmup_ratio=0",
        "train.lr_scheduler=linear", f"output.dir={out}", "output.name=run", *overrides])
    with PeakRSS() as mem:
        train(cfg)
    rows = [json.loads(x) for x in (out / "run/metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    seconds = rows[-1]["elapsed_s"] - rows[WARMUP - 1]["elapsed_s"]
    return {"tokens_per_s": sum(r["supervised_tokens"] for r in rows[WARMUP:]) / seconds,
            "peak_rss_mb": mem.peak / 2**20}


def run_trainer(work: Path, steps: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    from seektune.config import DataConfig
    from seektune.data.dataset import build
    from seektune.data.render import IGNORE
    from seektune.models.loading import resolve
    from seektune.runtime import set_threads

    set_threads()
    path = resolve("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(path)
    data = build(DataConfig(train=[str(work / "train.jsonl")], max_length=MAX_LEN, packing=False,
                            system_prompt=SYSTEM), tokenizer, seed=42)
    rows = [{"input_ids": r.input_ids, "labels": [IGNORE] + r.targets[:-1]} for r in data.train]
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(path), LoraConfig(task_type="CAUSAL_LM", **LORA))
    stamps: list[float] = []
    counted: list[int] = []
    collate = padded_collator(tokenizer, counted)
    class Clock(TrainerCallback):
        def on_step_end(self, *a, **kw):
            stamps.append(time.perf_counter())

    args = TrainingArguments(output_dir=str(work / "trainer"), per_device_train_batch_size=BATCH, max_steps=steps,
                             learning_rate=LR, lr_scheduler_type="linear", warmup_steps=0, bf16=True,
                             use_cpu=not torch.cuda.is_available(), save_strategy="no", logging_strategy="no",
                             report_to=[], dataloader_num_workers=0, remove_unused_columns=False, seed=42,
                             disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate, callbacks=[Clock()])
    with PeakRSS() as mem:
        trainer.train()
    return {"tokens_per_s": sum(counted[WARMUP:steps]) / (stamps[-1] - stamps[WARMUP - 1]),
            "peak_rss_mb": mem.peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", nargs="+", metavar="WORD",
                        help="run only the variants whose name holds one of these words (the Trainer always runs)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child != "trainer":   # as `seektune train` starts: on tcmalloc where installed (seektune.allocator)
            from seektune.allocator import reexec_with_tcmalloc

            reexec_with_tcmalloc()
        work = Path(args.work)
        overrides = VARIANTS[args.child][0]
        result = run_trainer(work, args.steps) if args.child == "trainer" else run_seektune(work, args.steps,
                                                                                             overrides)
        from seektune.allocator import active

        print("RESULT " + json.dumps({**result, "allocator": active()}), flush=True)
        return
    work = Path(tempfile.mkdtemp(prefix="seektune-levers-"))
    data_file(work)
    chosen = {name: env for name, (_, env) in VARIANTS.items()
              if name == "trainer" or not args.only or any(word in name for word in args.only)}
    for name, env in list(chosen.items()):
        if "LD_PRELOAD" in env and not (LIBDIR / env["LD_PRELOAD"]).is_file():  # Debian's libjemalloc2
            print(f"skipped: {name} ({LIBDIR / env['LD_PRELOAD']} is not installed)")
            del chosen[name]
    results: dict[str, list[dict]] = {name: [] for name in chosen}
    for repeat in range(args.repeats):
        for name, env in chosen.items():
            print(f"[{repeat + 1}/{args.repeats}] {name} ...", flush=True)
            cache = Path(tempfile.mkdtemp(dir=work))   # a cold inductor cache for every run
            began = time.perf_counter()
            done = subprocess.run([sys.executable, __file__, "--child", name, "--steps", str(args.steps),
                                   "--work", str(work)], capture_output=True, text=True,
                                  env={**os.environ, "TOKENIZERS_PARALLELISM": "false",
                                       "TORCHINDUCTOR_CACHE_DIR": str(cache), **env})
            wall = time.perf_counter() - began
            line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
            results[name].append({**json.loads(line[7:]), "wall_s": wall})
    base_speed = statistics.median(r["tokens_per_s"] for r in results["trainer"])
    base_rss = statistics.median(r["peak_rss_mb"] for r in results["trainer"])
    print(f"\nSmolLM2-135M LoRA r16, {BATCH} x max {MAX_LEN}, bf16, {args.steps} steps ({WARMUP} not timed), "
          f"median of {args.repeats} interleaved runs; supervised tokens/s\n")
    print("| run | allocator | supervised tokens/s | vs Trainer | peak RSS MB | vs Trainer | wall s "
          "| runs (tokens/s) |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for name, runs in results.items():
        speed = statistics.median(r["tokens_per_s"] for r in runs)
        rss = statistics.median(r["peak_rss_mb"] for r in runs)
        wall = statistics.median(r["wall_s"] for r in runs)
        each = ", ".join(f"{r['tokens_per_s']:.0f}" for r in runs)
        print(f"| {name} | {runs[0]['allocator']} | {speed:.0f} | {speed / base_speed:.2f} | {rss:.0f} | "
              f"{rss / base_rss:.2f} | {wall:.0f} | {each} |")


if __name__ == "__main__":
    main()
