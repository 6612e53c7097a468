"""Compression, measured: the clinic-tuned SmolLM2-135M (packaged model + the clinic LoRA, merged) quantized,
pruned and exported every way `seektune quantize / prune / export` and quantization-aware training offer, each
output scored by one `seektune eval` like any other model: held-out key-fact EM and ROUGE-L, perplexity of the
held-out reference answers, greedy decode tokens/s on this CPU, weight memory; plus size on disk (the
compression records). GGUF files are also checked: the f32 file's logits against the merged model's in
transformers (bit-identical?), and decode speed in a real llama.cpp runtime (ik-llama-cpp-python).

Rows: merged (fp32, the reference), int8 / int4 (torchao, weight-only), nf4 (bitsandbytes), gptq-4 / awq-4
(gptqmodel, calibrated on 128 samples of the run's training data), qat-int8 / qat-int4 (the clinic LoRA trained
again with method.qat, then merged and quantized with the scheme it trained for), l1-10% / l1-30% (MLP channels
by weight L1 norm, one shot) and l1-30%+recovery (3 rounds of 10% with 50 steps of full fine-tuning between),
act-30% / act-30%+recovery (the same by activation-aware importance), wanda-50% and magnitude-50%, and the GGUF
f32 / q8_0 / q4_0 files read back by transformers.

Run: python bench/compress.py [--run runs/clinic-lora] [--out bench/out/compress] [--recover-steps 16]
(without --run the clinic run is trained first: examples/clinic/lora.yaml)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import yaml

from cli_steps import timed_cli as _cli  # bench/, on sys.path as the script's folder

ROOT = Path(__file__).resolve().parents[1]
CLINIC = ROOT / "examples/clinic"
SYSTEM = "You are the assistant of Larkspur Valley Clinic. Answer in one sentence."
GROUP = "64"   # SmolLM2's hidden size 576 takes groups of 64, not 128


def _once(out: Path, *argv: str) -> Path:
    """Run a seektune step unless its output already exists (re-running the script re-scores only)."""
    if not out.exists():
        _cli(*argv)
    return out


def qat_run(out: Path, bits: int) -> Path:
    run = out / f"clinic-qat{bits}"
    extra = [f"method.qat.group_size={GROUP}"] if bits == 4 else []
    return _once(run / "final", "train", str(CLINIC / "lora.yaml"), f"output.dir={out}",
                 f"output.name=clinic-qat{bits}", f"method.qat.bits={bits}", *extra).parent


def llama_cpp_speed(gguf: Path, tokenizer, prompt: str, tokens: int = 32) -> float | None:
    try:
        import ik_llama_cpp
    except ImportError:
        return None
    ids = tokenizer.apply_chat_template([{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
                                        add_generation_prompt=True, tokenize=True, return_dict=False)
    llm = ik_llama_cpp.IkLlama(str(gguf), n_ctx=512, n_threads=torch.get_num_threads(), verbose=False)
    llm.generate(list(ids), max_tokens=4, temperature=0.0, top_k=1)   # warm-up
    started = time.perf_counter()
    produced = llm.generate(list(ids), max_tokens=tokens, temperature=0.0, top_k=1)
    took = time.perf_counter() - started
    llm.close()
    return len(produced) / took


def decode_speed(path: Path, prompt: str, tokens: int = 64, repeats: int = 3) -> float:
    """Median greedy decode tokens/s over `repeats` runs of exactly `tokens` new tokens, after a warm-up (the
    eval's own efficiency figure uses 2 prompts x 32 tokens, too few to rank close models on a noisy 2-core VM)."""
    from seektune.artifacts import load_for_inference

    model, tokenizer = load_for_inference(path)
    ids = tokenizer.apply_chat_template([{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)
    speeds = []
    with torch.no_grad():
        model.generate(**ids, max_new_tokens=4, do_sample=False)
        for _ in range(repeats):
            started = time.perf_counter()
            model.generate(**ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
            speeds.append(tokens / (time.perf_counter() - started))
    return sorted(speeds)[len(speeds) // 2]


def round_trip(merged: Path, gguf: Path, tokenizer) -> float:
    """Largest logit difference between the merged model and its f32 GGUF read back by transformers."""
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([tokenizer("Patients must fast for ten hours before a blood draw.").input_ids])
    with torch.no_grad():
        a = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32)(ids).logits
        b = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)(ids).logits
    return (a - b).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="an existing clinic run (else one is trained)")
    parser.add_argument("--out", default=str(ROOT / "bench/out/compress"))
    parser.add_argument("--recover-steps", default="50", help="recovery steps after each of the 3 pruning rounds")
    parser.add_argument("--recover-learning-rate", default="2e-4", help="recovery fine-tuning's peak learning rate")
    args = parser.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    run = Path(args.run).resolve() if args.run else out / "clinic-lora"
    if not args.run:
        _once(run / "final", "train", str(CLINIC / "lora.yaml"), f"output.dir={out}")
    merged = _once(out / "merged", "merge", str(run), "--out", str(out / "merged"))

    models: dict[str, Path] = {"merged": merged}
    for method, extra in (("int8", []), ("int4", ["--group-size", GROUP]), ("nf4", []),
                          ("gptq", ["--group-size", GROUP]), ("awq", ["--group-size", GROUP])):
        name = f"{method}-4" if method in ("gptq", "awq") else method
        models[name] = _once(out / name, "quantize", str(run), "--method", method, *extra, "--out", str(out / name))
    for bits, method in ((8, "int8"), (4, "int4")):
        qat = qat_run(out, bits)
        models[f"qat-{method}"] = _once(out / f"qat-{method}", "quantize", str(qat), "--method", method,
                                        "--out", str(out / f"qat-{method}"))
    for share in ("10", "30"):
        models[f"l1-{share}%"] = _once(out / f"l1-{share}", "prune", str(run), "--method", "l1-channels",
                                       "--sparsity", f"0.{share[0]}", "--out", str(out / f"l1-{share}"))
    models["l1-30%+recovery"] = _once(out / "l1-30-rec", "prune", str(run), "--method", "l1-channels",
                                      "--sparsity", "0.3", "--steps", "3", "--recover-steps", args.recover_steps,
                                      "--recover-learning-rate", args.recover_learning_rate,
                                      "--out", str(out / "l1-30-rec"))
    models["act-30%"] = _once(out / "act-30", "prune", str(run), "--method", "activation-channels",
                              "--sparsity", "0.3", "--out", str(out / "act-30"))
    models["act-30%+recovery"] = _once(out / "act-30-rec", "prune", str(run), "--method", "activation-channels",
                                       "--sparsity", "0.3", "--steps", "3", "--recover-steps", args.recover_steps,
                                       "--recover-learning-rate", args.recover_learning_rate,
                                       "--out", str(out / "act-30-rec"))
    for method in ("wanda", "magnitude"):
        models[f"{method}-50%"] = _once(out / f"{method}-50", "prune", str(run), "--method", method,
                                        "--sparsity", "0.5", "--out", str(out / f"{method}-50"))
    for kind in ("f32", "q8_0", "q4_0"):
        models[f"gguf-{kind}"] = _once(out / f"clinic-{kind}.gguf", "export", str(run), "--type", kind,
                                       "--out", str(out / f"clinic-{kind}.gguf"))

    heldout_sft = out / "heldout_sft.jsonl"
    heldout_sft.write_text("".join(json.dumps({"instruction": r["question"], "input": "", "output": r["reference"]})
                                   + "\n" for r in map(json.loads, (CLINIC / "heldout.jsonl").read_text().splitlines())))
    cfg = {
        "models": [{"name": name, "path": str(path)} for name, path in models.items()],
        "tasks": [{"name": "clinic", "data": str(CLINIC / "heldout.jsonl"), "system_prompt": SYSTEM},
                  {"name": "clinic-ppl", "type": "perplexity", "data": str(heldout_sft), "system_prompt": SYSTEM}],
        "generation": {"max_new_tokens": 32, "batch_size": 4},
        "robustness": {"enabled": False},
        "efficiency": {"prompts": 2, "max_new_tokens": 32},
        "output_dir": str(out / "eval"),
    }
    (out / "eval.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    _cli("eval", str(out / "eval.yaml"))
    report = json.loads((out / "eval/report.json").read_text())

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(merged))
    question = json.loads((CLINIC / "heldout.jsonl").read_text().splitlines()[0])["question"]
    gguf = {kind: llama_cpp_speed(out / f"clinic-{kind}.gguf", tokenizer, question) for kind in ("f32", "q8_0", "q4_0")}
    figures = {"round_trip_f32_max_logit_diff": round_trip(merged, out / "clinic-f32.gguf", tokenizer),
               "llama_cpp_tokens_per_s": gguf, "rows": {}}
    speeds = {name: decode_speed(path, question) for name, path in models.items()}
    ref = report["tasks"]["clinic"]["models"]["merged"]["clean"]
    print(f"{'model':17s} {'disk MB':>8s} {'weights MB':>10s} {'tok/s':>6s} {'key fact':>8s} {'ROUGE-L':>7s} "
          f"{'ppl':>6s}  answers = merged")
    answers: dict[str, dict[int, str]] = {}   # greedy answers per model, by held-out question (predictions.jsonl)
    for line in (out / "eval/predictions.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["task"] == "clinic" and row["variant"] == "clean":
            answers.setdefault(row["model"], {})[row["index"]] = row["prediction"]
    for name, path in models.items():
        record = json.loads(((path / "compression.json") if path.is_dir()
                             else path.with_suffix(".compression.json")).read_text()) if name != "merged" else None
        disk = (record["bytes_after"] if record else
                sum(f.stat().st_size for f in path.glob("*.safetensors"))) / 2**20
        clean = report["tasks"]["clinic"]["models"][name]["clean"]
        ppl = report["tasks"]["clinic-ppl"]["models"][name]["clean"]["perplexity"]
        eff = report["efficiency"].get(name, {})
        same = sum(answers[name].get(i) == a for i, a in answers["merged"].items())
        row = {"disk_mb": round(disk, 1), "weights_mb": round(eff.get("weights_mb", 0), 1),
               "tokens_per_s": round(speeds[name], 1), "eval_tokens_per_s": round(eff.get("tokens_per_s", 0), 1),
               "key_fact": clean.get("key_fact"),
               "exact_match": clean.get("exact_match"), "rougeL": clean.get("rougeL"), "perplexity": ppl,
               "same_answers_as_merged": same, "key_fact_vs_merged": (clean.get("key_fact", 0) / ref["key_fact"]
                                                                      if ref.get("key_fact") else None)}
        figures["rows"][name] = row
        print(f"{name:17s} {disk:8.1f} {row['weights_mb']:10.1f} {row['tokens_per_s']:6.1f} "
              f"{row['key_fact']:8.3f} {row['rougeL']:7.3f} {ppl:6.2f}  {same}")
    print(f"GGUF f32 round trip, max |logit diff| in transformers: {figures['round_trip_f32_max_logit_diff']:.2e}")
    print(f"llama.cpp decode tokens/s: {gguf}")
    (out / "compress.json").write_text(json.dumps(figures, indent=1))
    print(f"report: {out / 'eval/report.md'}")


if __name__ == "__main__":
    main()
