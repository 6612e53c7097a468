"""Preference optimisation on the clinic demo, measured: DPO, a reward model with best-of-4, and GRPO, each from
the same clinic SFT model (packaged SmolLM2-135M-Instruct + the clinic LoRA, merged).

Figures (held-out = the 20 paraphrased clinic questions of examples/clinic/heldout.jsonl, never trained on):
- preference accuracy on the 20 held-out pairs (examples/clinic/preference/heldout.jsonl): the share of pairs where
  the model gives the chosen answer a higher log-probability than the rejected one, before and after DPO; and
  DPO's own reward accuracy (beta x log-ratio to the reference, chosen > rejected);
- key-fact match of greedy answers to the held-out questions (the demo's score), before and after each objective;
- the reward model's held-out pair accuracy, and best-of-4 (sampled at T=0.8, chosen by it) vs greedy;
- GRPO's mean reward per step (the key-fact reward on sampled answers) and its held-out key-fact match.

Run: python bench/preference.py [--sft-run runs/clinic-lora] [--out bench/out/preference]
(without --sft-run the clinic SFT run is trained first: examples/clinic/lora.yaml, 24 steps)
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from cli_steps import timed_cli as _cli  # bench/, on sys.path as the script's folder

ROOT = Path(__file__).resolve().parents[1]
PREF = ROOT / "examples/clinic/preference"
SYSTEM = "You are the assistant of Larkspur Valley Clinic. Answer in one sentence."


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def logprob_accuracy(model_ref: str | Path) -> tuple[float, float]:
    """(share of held-out pairs whose chosen answer the model finds more likely than the rejected one, mean
    log-probability margin chosen - rejected in nats)."""
    from seektune.artifacts import open_artifact
    from seektune.data.preference import collate_pairs, read_pairs, render_pair
    from seektune.data.render import Renderer
    from seektune.train.objectives.preference import sequence_logps

    model, tokenizer = open_artifact(model_ref).load()
    renderer = Renderer(tokenizer, 256, train_on="last_assistant")
    rows = [render_pair(renderer, r) for r in read_pairs(PREF / "heldout.jsonl", SYSTEM)]
    with torch.no_grad():
        batch = collate_pairs(rows, tokenizer.pad_token_id)
        logps, _ = sequence_logps(model, **batch, selective_head=False)
    chosen, rejected = logps.chunk(2)
    return (chosen > rejected).float().mean().item(), (chosen - rejected).mean().item()


def key_fact(model_ref: str | Path, out: Path, *extra: str) -> float:
    from seektune.metrics.text import key_fact_match

    _cli("generate", str(model_ref), "--prompts", str(ROOT / "examples/clinic/heldout.jsonl"), "--system", SYSTEM,
         "--max-new-tokens", "32", "--out", str(out), *extra)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return sum(key_fact_match(r["answer"], r["key_fact"]) for r in records) / len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft-run", help="an existing clinic SFT run (else one is trained, 24 steps)")
    parser.add_argument("--out", default=str(ROOT / "bench/out/preference"))
    parser.add_argument("--best-of-temperature", type=float, default=0.8)
    parser.add_argument("--only", default="sft,dpo,rm,grpo",
                        help="stages to (re)run; the others' figures are read from an earlier preference.json")
    args = parser.parse_args()
    from seektune.runtime import set_threads

    set_threads()
    out = Path(args.out)
    runs = out / "runs"
    sft_run = Path(args.sft_run) if args.sft_run else runs / "clinic-lora"
    if not args.sft_run:
        _cli("train", str(ROOT / "examples/clinic/lora.yaml"), f"output.dir={runs}", "train.max_steps=24",
             "output.overwrite=true")
    sft = out / "clinic-sft"
    if not (sft / "config.json").is_file():
        _cli("merge", str(sft_run), "--out", str(sft))
    model = f"model.name_or_path={sft}"
    common = [model, f"output.dir={runs}", "output.overwrite=true"]
    saved = out / "preference.json"
    figures: dict[str, object] = json.loads(saved.read_text()) if saved.is_file() else {}
    only = set(args.only.split(","))

    if "sft" in only:
        figures["sft_logprob_accuracy"] = logprob_accuracy(sft)
        figures["sft_key_fact"] = key_fact(sft, out / "sft-greedy.jsonl")

    if "dpo" in only:
        _cli("train", str(PREF / "dpo.yaml"), *common)
        dpo = runs / "clinic-dpo"
        evals = [m for m in _metrics(dpo) if "eval_preference_accuracy" in m]
        figures["dpo_reward_accuracy_curve"] = [(m["step"], m["eval_preference_accuracy"]) for m in evals]
        figures["dpo_logprob_accuracy"] = logprob_accuracy(dpo)
        figures["dpo_key_fact"] = key_fact(dpo, out / "dpo-greedy.jsonl")

    if "rm" in only:
        _cli("train", str(PREF / "reward.yaml"), *common)
        rm = runs / "clinic-rm"
        evals = [m for m in _metrics(rm) if "eval_pair_accuracy" in m]
        figures["rm_pair_accuracy_curve"] = [(m["step"], m["eval_pair_accuracy"]) for m in evals]
        figures["best_of_4_key_fact"] = key_fact(sft, out / "sft-best-of-4.jsonl", "--best-of", "4", "--reward",
                                                 str(rm), "--temperature", str(args.best_of_temperature))

    grpo = runs / "clinic-grpo"
    if "grpo" in only:
        _cli("train", str(PREF / "grpo.yaml"), *common)
        figures["grpo_key_fact"] = key_fact(grpo, out / "grpo-greedy.jsonl")
    steps = [m for m in _metrics(grpo) if "reward" in m]
    figures["grpo_reward_curve"] = [(m["step"], round(m["reward_key_fact"], 3)) for m in steps]
    per_epoch: dict[int, list[float]] = {}
    for m in steps:   # each epoch samples for every training prompt once: a fair comparison between epochs
        per_epoch.setdefault(int(math.ceil(m["epoch"])), []).append(m["reward_key_fact"])
    figures["grpo_reward_per_epoch"] = {e: sum(v) / len(v) for e, v in sorted(per_epoch.items())}

    saved.write_text(json.dumps(figures, indent=1))
    print(f"""
| model | held-out log-prob preference accuracy | held-out key-fact match (greedy) |
|---|---|---|
| clinic SFT (start of every row) | {figures['sft_logprob_accuracy'][0]:.2f} (margin \
{figures['sft_logprob_accuracy'][1]:.1f} nats) | {figures['sft_key_fact']:.2f} |
| + DPO (sigmoid, beta 0.1, sft_weight 1) | {figures['dpo_logprob_accuracy'][0]:.2f} (margin \
{figures['dpo_logprob_accuracy'][1]:.1f} nats) | {figures['dpo_key_fact']:.2f} |
| SFT, best of 4 by the reward model | - | {figures['best_of_4_key_fact']:.2f} |
| + GRPO (key_fact + format rewards) | - | {figures['grpo_key_fact']:.2f} |

DPO reward accuracy on held-out pairs by step: {figures['dpo_reward_accuracy_curve']}
reward model held-out pair accuracy by step: {figures['rm_pair_accuracy_curve']}
GRPO key-fact reward on sampled answers (mean per epoch over the 60 training prompts): \
{', '.join(f"epoch {e}: {v:.3f}" for e, v in figures['grpo_reward_per_epoch'].items())}
figures: {out / 'preference.json'}""")


if __name__ == "__main__":
    main()
