"""Continual learning, measured: task A = the clinic facts, task B = Harbourline Ferries (examples/ferry), learnt
after A five ways, each from the same clinic run (packaged SmolLM2-135M-Instruct + the clinic LoRA, merged):

  naive        continue training on B, nothing kept
  ewc          + EWC on the clinic's diagonal Fisher (all 60 clinic samples), lambda set so that the penalty at
               the naive run's end point would be 10 nats (lambda = 20 / sum F (dW_naive)^2)
  replay       + 20% of every step's rows are clinic rows, drawn uniformly
  prioritized  + the same, drawn by rank of their current loss (alpha 0.7, refreshed every 5 steps)
  freeze       adaptive freezing: the half of the layers with the most clinic Fisher stay frozen

Then one `seektune eval` over the base, the clinic run and the five ferry runs on the clinic's and the ferry's
held-out paraphrases and the general questions, with its continual report: the accuracy matrix, forgetting,
backward/forward transfer, the heat-map. Printed: B's held-out EM / key fact, A's before and after, the drop, the
general-questions drop, steps and time.

Run: python bench/continual.py [--clinic-run runs/clinic-lora] [--out bench/out/continual] [--only naive,ewc,...]
(without --clinic-run the clinic run is trained first: examples/clinic/lora.yaml, 24 steps)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from cli_steps import timed_cli as _cli  # bench/, on sys.path as the script's folder

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("naive", "freeze", "ewc", "replay", "prioritized")   # freeze computes the clinic Fisher ewc calibrates on


def weighted_change(run: Path, fisher: dict, scale: float) -> float:
    """sum F * (scale * B @ A)^2 over a LoRA run's adapted weights: what EWC's penalty measures."""
    from safetensors.torch import load_file

    weights = load_file(run / "final/adapter_model.safetensors")
    total = 0.0
    for key, a in weights.items():
        if "lora_A" in key:
            b = weights[key.replace("lora_A", "lora_B")]
            name = key.replace("base_model.model.", "").replace(".lora_A.weight", ".weight")
            total += (fisher[name].float() * (scale * b.float() @ a.float()) ** 2).sum().item()
    return total


def train_variant(name: str, clinic: Path, out: Path, ewc_weight: float | None) -> dict:
    settings = {
        "naive": [],
        "ewc": [f"continual.ewc={{weight: {ewc_weight}, fisher_samples: 60}}"],
        "replay": ["continual.replay={ratio: 0.2}"],
        "prioritized": ["continual.replay={ratio: 0.2, prioritized: true, alpha: 0.7, refresh_every: 5}"],
        "freeze": ["continual.freeze_important=0.5"],
    }[name]
    run = out / f"ferry-{name}"
    took = _cli("train", str(ROOT / "examples/ferry/lora.yaml"), f"output.dir={out}", f"output.name=ferry-{name}",
                "output.overwrite=true", f"continual.previous=[{clinic}]", *settings)
    result = json.loads((run / "result.json").read_text())
    return {"steps": result["steps"], "train_s": round(took), "final_train_loss": result["final_train_loss"],
            "frozen_layers": result.get("frozen_layers", [])}


def eval_config(clinic: Path, out: Path, names: list[str]) -> Path:
    clinic_system = "You are the assistant of Larkspur Valley Clinic. Answer in one sentence."
    ferry_system = "You are the assistant of Harbourline Ferries. Answer in one sentence."
    cfg = {
        "models": [{"name": "base", "path": "smollm2-135m-instruct"}, {"name": "clinic", "path": str(clinic)}]
        + [{"name": n, "path": str(out / f"ferry-{n}")} for n in names],
        "tasks": [
            {"name": "clinic", "data": str(ROOT / "examples/clinic/heldout.jsonl"), "system_prompt": clinic_system},
            {"name": "ferry", "data": str(ROOT / "examples/ferry/heldout.jsonl"), "system_prompt": ferry_system},
            {"name": "general", "data": str(ROOT / "examples/clinic/general.jsonl"), "general": True},
        ],
        "generation": {"max_new_tokens": 32, "batch_size": 4},
        "robustness": {"enabled": False},
        "efficiency": {"enabled": False},
        "forgetting": {"baseline": "clinic"},
        "continual": {"base": "base", "metric": "exact_match",
                      "sequences": {n: [{"model": "clinic", "task": "clinic"}, {"model": n, "task": "ferry"}]
                                    for n in names}},
        "output_dir": str(out / "eval"),
    }
    path = out / "eval.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clinic-run", help="an existing clinic run (else one is trained, 24 steps)")
    parser.add_argument("--out", default=str(ROOT / "bench/out/continual"))
    parser.add_argument("--only", default=",".join(VARIANTS), help="variants to (re)train")
    parser.add_argument("--no-train", action="store_true", help="only the evaluation of runs already in --out")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    figures_path = out / "continual.json"
    figures = json.loads(figures_path.read_text()) if figures_path.is_file() else {"runs": {}}

    clinic = Path(args.clinic_run).resolve() if args.clinic_run else out / "clinic-lora"
    if not args.clinic_run and not (clinic / "final").is_dir():
        _cli("train", str(ROOT / "examples/clinic/lora.yaml"), f"output.dir={out}", "train.max_steps=24")
    wanted = [v for v in args.only.split(",") if v]
    if not args.no_train:
        for name in wanted:
            ewc_weight = None
            if name == "ewc":
                from safetensors.torch import load_file

                if not (clinic / "fisher.safetensors").is_file() or "naive" not in figures["runs"]:
                    sys.exit("ewc is calibrated on the naive run and needs the clinic Fisher: run naive and "
                             "freeze (or any Fisher user) first")
                change = weighted_change(out / "ferry-naive", load_file(clinic / "fisher.safetensors"), scale=2.0)
                ewc_weight = float(f"{20.0 / change:.3g}")
                figures["ewc_weight"], figures["naive_weighted_change"] = ewc_weight, change
            figures["runs"][name] = train_variant(name, clinic, out, ewc_weight)
            figures_path.write_text(json.dumps(figures, indent=1))
    names = [v for v in VARIANTS if (out / f"ferry-{v}/final").is_dir()]
    _cli("eval", str(eval_config(clinic, out, names)))
    report = json.loads((out / "eval/report.json").read_text())
    figures["eval"] = {"tasks": report["tasks"], "continual": report.get("continual")}
    figures_path.write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures["runs"], indent=1))
    print(f"report: {out / 'eval/report.md'}")


if __name__ == "__main__":
    main()
