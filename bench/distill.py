"""Distillation, measured: compress the clinic-tuned SmolLM2-135M (teacher: the packaged model + the clinic LoRA)
into a student with half its layers (every other one of the 30 kept: layer dropping, a standard start for a
student), recovered on the clinic data by KD vs by plain SFT with the same data, steps and learning rate
(96 steps at 5e-4 by default; at 24 steps at 2e-4 neither student answered anything).

KD: objective kd, forward KL at temperature 2 mixed with CE by alpha 0.5, on the answer tokens only. Both are
full fine-tunes of the student. One `seektune eval` then scores teacher, the untrained student and both
recovered students on the clinic's held-out paraphrases (EM, key fact, ROUGE-L), their perplexity on the clinic
answers, greedy decode speed and weight size.

Run: python bench/distill.py [--teacher runs/clinic-lora] [--out bench/out/distill] [--steps 96 --learning-rate 5e-4]
(without --teacher the clinic run is trained first: examples/clinic/lora.yaml, 24 steps)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from cli_steps import timed_cli as _cli  # bench/, on sys.path as the script's folder

ROOT = Path(__file__).resolve().parents[1]
CLINIC = ROOT / "examples/clinic"
SYSTEM = "You are the assistant of Larkspur Valley Clinic. Answer in one sentence."


def half_depth_student(out: Path) -> Path:
    """SmolLM2-135M-Instruct with layers 0, 2, ..., 28 kept (15 of 30): `seektune drop-layers`."""
    if not (out / "config.json").is_file():
        _cli("drop-layers", "smollm2-135m-instruct", "--keep", "0-28:2", "--out", str(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", help="an existing clinic run (else one is trained, 24 steps)")
    parser.add_argument("--out", default=str(ROOT / "bench/out/distill"))
    parser.add_argument("--learning-rate", default="5e-4")
    parser.add_argument("--steps", default="96", help="optimizer steps of each student run")
    parser.add_argument("--retrain", action="store_true", help="train the students again even if they exist")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    teacher = Path(args.teacher).resolve() if args.teacher else out / "clinic-lora"
    if not args.teacher and not (teacher / "final").is_dir():
        _cli("train", str(CLINIC / "lora.yaml"), f"output.dir={out}", "train.max_steps=24")
    student = half_depth_student(out / "student-init")

    common = [f"model.name_or_path={student}", "method.name=full", f"train.learning_rate={args.learning_rate}",
              f"train.max_steps={args.steps}", f"output.dir={out}", "output.overwrite=true"]
    saved = out / "distill.json"
    figures = json.loads(saved.read_text()) if saved.is_file() else {"runs": {}}
    for name, objective in (("sft", ["objective.name=causal_lm"]),
                            ("kd", ["objective.name=kd", f"objective.teacher={teacher}", "objective.alpha=0.5",
                                    "objective.temperature=2.0", "objective.divergence=forward_kl"])):
        run = out / f"student-{name}"
        if args.retrain or not (run / "final").is_dir():
            took = _cli("train", str(CLINIC / "lora.yaml"), *common, f"output.name=student-{name}", *objective)
            figures["runs"][name] = {"train_s": round(took)}
        result = json.loads((run / "result.json").read_text())
        figures["runs"].setdefault(name, {}).update(steps=result["steps"], final_train_loss=result["final_train_loss"])

    # perplexity of the reference answers to the held-out questions, rendered as in training
    heldout_sft = out / "heldout_sft.jsonl"
    heldout_sft.write_text("".join(json.dumps({"instruction": r["question"], "input": "", "output": r["reference"]})
                                   + "\n" for r in map(json.loads, (CLINIC / "heldout.jsonl").read_text().splitlines())))

    cfg = {
        "models": [{"name": "teacher", "path": str(teacher)}, {"name": "student-init", "path": str(student)},
                   {"name": "student-sft", "path": str(out / "student-sft")},
                   {"name": "student-kd", "path": str(out / "student-kd")}],
        "tasks": [{"name": "clinic", "data": str(CLINIC / "heldout.jsonl"), "system_prompt": SYSTEM},
                  {"name": "clinic-ppl", "type": "perplexity", "data": str(heldout_sft),
                   "system_prompt": SYSTEM},
                  {"name": "general", "data": str(CLINIC / "general.jsonl"), "general": True}],
        "generation": {"max_new_tokens": 32, "batch_size": 4},
        "robustness": {"enabled": False},
        "efficiency": {"prompts": 2, "max_new_tokens": 32},
        "forgetting": {"baseline": "teacher"},
        "output_dir": str(out / "eval"),
    }
    (out / "eval.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    _cli("eval", str(out / "eval.yaml"))
    report = json.loads((out / "eval/report.json").read_text())
    figures["eval"] = {"tasks": report["tasks"], "efficiency": report["efficiency"]}
    (out / "distill.json").write_text(json.dumps(figures, indent=1))
    for model in ("teacher", "student-init", "student-sft", "student-kd"):
        clean = report["tasks"]["clinic"]["models"][model]["clean"]
        ppl = report["tasks"]["clinic-ppl"]["models"][model]["clean"]["perplexity"]
        eff = report["efficiency"].get(model, {})
        print(f"{model:13s} EM {clean['exact_match']:.3f} key fact {clean.get('key_fact', 0):.3f} "
              f"ROUGE-L {clean['rougeL']:.3f} ppl {ppl:.2f} tok/s {eff.get('tokens_per_s', 0):.1f} "
              f"MB {eff.get('weights_mb', 0):.0f}")
    print(f"report: {out / 'eval/report.md'}")


if __name__ == "__main__":
    main()
