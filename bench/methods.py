"""Every tuning method on the embedded model: trainable parameters, peak memory, tokens/s and the demo score.

Same model (packaged SmolLM2-135M-Instruct), same data (the clinic demo set), same steps, batch, max length and
precision for every method; each method runs in its own child process so peak memory is its own. The demo
score is key-fact exact match on the 20 held-out paraphrases (examples/clinic/heldout.jsonl), greedy, after
the same number of steps. Learning rates are each method's usual order of magnitude, not tuned per method.
Ratios are against LoRA (r=16, all-linear) measured in the same script.

Run: python bench/methods.py [--steps 32] [--only lora,qlora-nf4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lora_vs_trainer import MAX_LEN, ROOT, SYSTEM, WARMUP, PeakRSS  # noqa: E402  (same harness, same data)

LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05}
# name -> (method overrides, learning rate, padded rows)
METHODS = {
    "full": ({"name": "full"}, 5e-5, False),
    "freeze (last 4 layers)": ({"name": "freeze", "freeze.trainable_layers": 4}, 2e-4, False),
    "lora": ({"name": "lora", **{f"lora.{k}": v for k, v in LORA.items()}}, 1e-3, False),
    "dora": ({"name": "lora", "lora.use_dora": True, **{f"lora.{k}": v for k, v in LORA.items()}}, 1e-3, False),
    "rslora + pissa": ({"name": "lora", "lora.use_rslora": True, "lora.init": "pissa", "lora.lora_dropout": 0.0},
                       2e-4, False),
    "lora+ (ratio 16)": ({"name": "lora", "lora.loraplus_lr_ratio": 16, **{f"lora.{k}": v for k, v in LORA.items()}},
                         2e-4, False),
    "hybrid (lora + last 2 full)": ({"name": "lora", "lora.full_layers": 2, **{f"lora.{k}": v for k, v in LORA.items()}},
                                    5e-4, False),
    "qlora nf4": ({"name": "qlora", **{f"lora.{k}": v for k, v in LORA.items()}}, 1e-3, False),
    "qlora int8": ({"name": "qlora", "qlora.bits": 8, **{f"lora.{k}": v for k, v in LORA.items()}}, 1e-3, False),
    "adalora": ({"name": "adalora", "lora.lora_alpha": 32, "lora.lora_dropout": 0.0, "adalora.init_r": 12,
                 "adalora.target_r": 8}, 2e-3, False),
    "ia3": ({"name": "ia3"}, 1e-2, False),
    "bottleneck (dim 32)": ({"name": "bottleneck", "bottleneck.dim": 32}, 1e-3, False),
    "prompt (20 tokens)": ({"name": "prompt", "prompt.num_virtual_tokens": 20}, 3e-2, True),
    "prefix (20 tokens)": ({"name": "prefix", "prompt.num_virtual_tokens": 20}, 1e-2, True),
    "p_tuning (20 tokens)": ({"name": "p_tuning", "prompt.num_virtual_tokens": 20}, 1e-3, True),
}


def _train_file(tmp: Path) -> Path:
    lines = (ROOT / "examples/clinic/train.jsonl").read_text().splitlines()
    out = tmp / "train.jsonl"
    out.write_text("\n".join(lines * 4) + "\n")
    return out


def run_method(name: str, steps: int) -> dict:
    from seektune import config
    from seektune.demo import answer_questions, read_heldout
    from seektune.metrics.text import key_fact_match
    from seektune.train.loop import train

    overrides, lr, padded = METHODS[name]
    tmp = Path(tempfile.mkdtemp())
    cfg = config.load(None, [
        f"data.train={_train_file(tmp)}", f"data.max_length={MAX_LEN}", f"data.packing={str(not padded).lower()}",
        f"data.system_prompt={SYSTEM}", *[f"method.{k}={v}" for k, v in overrides.items()],
        f"train.max_steps={steps}", "train.micro_batch_size=4", f"train.learning_rate={lr}",
        "train.warmup_ratio=0.05", "train.seed=7", f"output.dir={tmp}", "output.name=run",
    ])
    with PeakRSS() as mem:
        run = train(cfg)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    timed = rows[WARMUP:]
    seconds = timed[-1]["elapsed_s"] - rows[WARMUP - 1]["elapsed_s"]
    result = json.loads((run / "result.json").read_text())
    items = read_heldout(ROOT / "examples/clinic/heldout.jsonl", SYSTEM)
    answers = answer_questions(str(run), [e.messages for e in items], 32)
    score = sum(key_fact_match(a, e.key_fact) for a, e in zip(answers, items)) / len(items)
    return {"trainable": result["trainable_parameters"], "total": result["total_parameters"],
            "tokens_per_s": sum(r["supervised_tokens"] for r in timed) / seconds, "peak_rss_mb": mem.peak / 2**20,
            "final_loss": rows[-1]["loss"], "demo_em": score}


def weight_footprints() -> dict[str, float]:
    """Memory of the loaded weights (MB) as LoRA/QLoRA hold the frozen base: fp32, bf16, NF4, int8."""
    import torch
    from transformers import AutoModelForCausalLM

    from seektune.method_config import MethodConfig
    from seektune.models.loading import resolve
    from seektune.models.methods.peft_family import quantization_config

    path = resolve("smollm2-135m-instruct")
    loads = {"fp32": {"dtype": torch.float32}, "bf16": {"dtype": torch.bfloat16},
             "nf4": {"quantization_config": quantization_config(MethodConfig(name="qlora"))},
             "int8": {"quantization_config": quantization_config(MethodConfig(name="qlora", qlora={"bits": 8}))}}
    return {k: AutoModelForCausalLM.from_pretrained(path, **kw).get_memory_footprint() / 2**20
            for k, kw in loads.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--only", help="comma-separated method names (default: all)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--footprint", action="store_true", help="only print the frozen weights' memory per storage")
    args = parser.parse_args()
    if args.footprint:
        for storage, mb in weight_footprints().items():
            print(f"{storage:5s} {mb:8.1f} MB")
        return
    if args.child:
        print("RESULT " + json.dumps(run_method(args.child, args.steps)), flush=True)
        return
    names = args.only.split(",") if args.only else list(METHODS)
    results = {}
    for name in names:
        print(f"running {name} ...", flush=True)
        out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--child", name],
                             capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(f"  failed:\n{out.stderr[-2000:]}", flush=True)
            continue
        results[name] = json.loads(line[7:])
        print(f"  {json.dumps(results[name])}", flush=True)  # partial results survive an interrupted run
    base = results.get("lora")
    print(f"\nSmolLM2-135M-Instruct, clinic data, {args.steps} steps x batch 4 x max {MAX_LEN}, precision auto; "
          f"demo = key-fact exact match on 20 held-out paraphrases (base model: see README)\n")
    print("| method | trainable | % | peak RSS MB | vs LoRA | tokens/s | vs LoRA | final loss | demo EM |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        mem = f"{r['peak_rss_mb'] / base['peak_rss_mb']:.2f}" if base else "-"
        speed = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}" if base else "-"
        print(f"| {name} | {r['trainable']:,} | {100 * r['trainable'] / r['total']:.3f} | {r['peak_rss_mb']:.0f} | "
              f"{mem} | {r['tokens_per_s']:.0f} | {speed} | {r['final_loss']:.3f} | {r['demo_em']:.2f} |")


if __name__ == "__main__":
    main()
