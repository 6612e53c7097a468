"""One micro-batch of issue 15's job, forward and backward timed and the tensors kept for backward counted, with
one lever of the loop's step changed at a time (each in its own process, eager layers).

The levers: peft's fp32 round trip of each LoRA layer's input (seektune skips it under autocast:
`models.layers.skip_adapter_input_casts`), the chunked head + cross-entropy (`train.chunked_loss`), gradient
checkpointing, and attention computed per packed sample (one causal SDPA call per sample instead of one call
per row with the block-diagonal mask; not shipped: slower on this CPU, see bench/README.md).

Run: python bench/lora_step_parts.py [--iterations 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lora_levers import BATCH, MAX_LEN, data_file, job_overrides  # noqa: E402  (bench/ is a folder of scripts)

VARIANTS = ("seektune step", "peft's fp32 input casts", "all logits at once", "gradient checkpointing",
            "attention per packed sample")


def per_sample_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                         position_ids=None, **kwargs):
    """SDPA once per packed sample (positions restart at 0), causal, no mask."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    rows = []
    for b in range(query.shape[0]):
        starts = torch.nonzero(position_ids[b] == 0).flatten().tolist() + [query.shape[2]]
        rows.append(torch.cat([sdpa_attention_forward(module, query[b:b + 1, :, s:e], key[b:b + 1, :, s:e],
                                                      value[b:b + 1, :, s:e], None, dropout=dropout,
                                                      scaling=scaling, is_causal=True)[0]
                               for s, e in zip(starts[:-1], starts[1:])], dim=1))
    return torch.cat(rows, dim=0), None


def child(variant: str, iterations: int, work: Path) -> dict:
    import torch
    from transformers import AttentionInterface

    from seektune import config
    from seektune.data.dataset import build as build_data
    from seektune.models import methods
    from seektune.models.layers import (enable_gradient_checkpointing, float32_master, skip_adapter_input_casts,
                                        store_frozen_in)
    from seektune.models.loading import load_model, load_tokenizer, resolve
    from seektune.runtime import set_threads
    from seektune.train import objectives
    from seektune.train.step_plan import make_plan

    set_threads()
    cfg = config.load(None, [*job_overrides(work), f"train.chunked_loss={variant != 'all logits at once'}"])
    tokenizer = load_tokenizer(cfg.model)
    data = build_data(cfg.data, tokenizer, cfg.train.seed)
    plan, _ = make_plan(cfg, data, 1)
    model = methods.prepare(load_model(cfg.model, pad_token_id=tokenizer.pad_token_id), cfg.method,
                            tokenizer_path=resolve(cfg.model.name_or_path))
    float32_master(model)
    store_frozen_in(model, torch.bfloat16)
    if variant != "peft's fp32 input casts":
        skip_adapter_input_casts(model)
    if variant == "gradient checkpointing":
        enable_gradient_checkpointing(model)
    if variant == "attention per packed sample":
        AttentionInterface.register("per_sample", per_sample_attention)
        model.config._attn_implementation = "per_sample"
    objective = objectives.build(model, cfg, tokenizer).train()
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    rows = []
    for step in range(iterations + 1):   # the first is not counted
        batch = objective.collate(plan.step(step, 0)[0][0], tokenizer.pad_token_id, True)
        kept: dict[int, int] = {}

        def pack(t):
            storage = t.untyped_storage()
            if storage.data_ptr() not in weights:
                kept[storage.data_ptr()] = storage.nbytes()
            return t

        began = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss, units = objective(**batch)
        forward = time.perf_counter()
        (loss / units).backward()
        done = time.perf_counter()
        model.zero_grad(set_to_none=True)
        rows.append({"forward_s": forward - began, "backward_s": done - forward, "kept_mb": sum(kept.values()) / 2**20})
    return {k: statistics.median(r[k] for r in rows[1:]) for k in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.iterations, Path(args.work))), flush=True)
        return
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="seektune-step-parts-"))
    data_file(work)
    print(f"SmolLM2-135M LoRA r16, one micro-batch of {BATCH} packed rows of {MAX_LEN}, bf16 autocast, eager "
          f"layers; medians of {args.iterations} micro-batches\n")
    print("| step | forward s | backward s | step s | vs seektune | kept for backward MB |")
    print("|---|---:|---:|---:|---:|---:|")
    base = None
    for variant in VARIANTS:
        done = subprocess.run([sys.executable, __file__, "--child", variant, "--iterations", str(args.iterations),
                               "--work", str(work)], capture_output=True, text=True)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{variant} failed:\n{done.stderr[-3000:]}")
        r = json.loads(line[7:])
        step = r["forward_s"] + r["backward_s"]
        base = base or step
        print(f"| {variant} | {r['forward_s']:.2f} | {r['backward_s']:.2f} | {step:.2f} | {step / base:.2f} | "
              f"{r['kept_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
