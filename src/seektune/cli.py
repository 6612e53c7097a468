"""seektune <verb>: each command parses its arguments and calls one function."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path

from seektune import __version__
from seektune.errors import SeektuneError


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here; hub ids resolve from the local HF cache
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # peft 0.21.2 calls an API transformers 5.23 deprecated; nothing a user can act on
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
    for name in ("transformers", "accelerate", "peft", "httpx", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


def cmd_train(args) -> None:
    from seektune import config
    from seektune.train.loop import train

    train(config.load(args.config, args.overrides), resume=args.resume)


def cmd_chat(args) -> None:
    from transformers import TextStreamer

    from seektune.models.generation import generate
    from seektune.models.loading import load_for_inference
    from seektune.runtime import set_threads

    set_threads()
    if len(args.model) > 1:
        from transformers import AutoTokenizer

        from seektune.models.adapters import load_many
        from seektune.models.loading import artifact_dir

        model, names = load_many(args.model)
        tokenizer = AutoTokenizer.from_pretrained(str(artifact_dir(args.model[0])))
        _use_adapter(model, names, args.use or names[0])
    else:
        model, tokenizer = load_for_inference(args.model[0])
        names = []
    system = [{"role": "system", "content": args.system}] if args.system else []
    if args.prompt is not None:
        print(generate(model, tokenizer, system + [{"role": "user", "content": args.prompt}],
                       args.max_new_tokens, args.temperature))
        return
    history = list(system)
    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    print("chat: empty line or Ctrl-D quits, /reset clears the history")
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            break
        if not line:
            break
        if line == "/reset":
            history = list(system)
            continue
        if line.startswith("/adapter"):
            _use_adapter(model, names, line.removeprefix("/adapter").strip())
            history = list(system)
            continue
        history.append({"role": "user", "content": line})
        print("model> ", end="", flush=True)
        answer = generate(model, tokenizer, history, args.max_new_tokens, args.temperature, streamer=streamer)
        history.append({"role": "assistant", "content": answer})


def _use_adapter(model, names: list[str], name: str) -> None:
    from seektune.errors import ConfigError

    if name not in names:
        raise ConfigError(f"no adapter named '{name}'; loaded: {', '.join(names) or 'one model only'}")
    model.set_adapter(name)
    print(f"adapter: {name}", flush=True)


def cmd_adapters_list(args) -> None:
    from seektune.models.adapters import find

    found = find(args.root)
    if not found:
        print(f"no adapters under {args.root}")
    for a in found:
        print(f"{a.name:24s} {a.method:10s} {a.detail:28s} {a.path}\n{'':24s} base: {a.base}")


def cmd_adapters_combine(args) -> None:
    from seektune.models.adapters import combine

    out = combine(args.adapters, args.out, args.weights, args.method, args.density)
    print(f"combined adapter: {out}")


def cmd_merge(args) -> None:
    from seektune.models.adapters import merge

    print(f"merged model: {merge(args.adapter, args.out)}")


def cmd_models(args) -> None:
    from seektune.models.registry import PACKAGED

    for m in PACKAGED.values():
        state = "cached" if (m.cached_dir() / "config.json").is_file() else (
            "available" if m.available() else "not installed")
        print(f"{m.name:30s} {state:14s} {m.description}\n{'':45s} needs: {m.requirement}")
    print("\nAlso: any local Hugging Face model directory, or a hub id already in the HF cache.")


def cmd_demo(args) -> None:
    from seektune import config
    from seektune.demo import compare, report
    from seektune.models.registry import PACKAGED
    from seektune.train.loop import train

    cfg = config.load(args.config, args.overrides)
    packaged = PACKAGED.get(cfg.model.name_or_path)
    if packaged and not packaged.available():
        print(f"skipped: {cfg.model.name_or_path} is not installed ({packaged.requirement})")
        return
    if not (cfg.run_dir / "final").is_dir() or args.retrain:
        cfg.output.overwrite = True
        train(cfg)
    rows = compare(cfg, Path(args.heldout), args.max_new_tokens)
    text, scores = report(rows)
    (cfg.run_dir / "demo_report.md").write_text(text + "\n", encoding="utf-8")
    (cfg.run_dir / "demo_scores.json").write_text(json.dumps(scores, indent=1))
    print(text)
    print(f"\nreport: {cfg.run_dir / 'demo_report.md'}")


def cmd_eval(args) -> None:
    from seektune.evaluate import eval_config, report
    from seektune.evaluate.results import collect
    from seektune.evaluate.runner import Runner

    cfg = eval_config.load(args.config, args.overrides)
    runner = Runner(cfg)
    runner.run()
    result = collect(runner)
    path = report.write(result, runner.out, cfg.forgetting.threshold)
    card = result["scorecard"]["models"]
    for name in result["models"]:
        score = card[name]["score"]
        print(f"{name:20s} score {score:.4f}" if score is not None else f"{name:20s} score -")
    flagged = [f"{m}/{t}/{k}" for m, ts in result["forgetting"].items() for t, ks in ts.items()
               for k, d in ks.items() if d["flagged"]]
    if flagged:
        print(f"forgetting flagged: {', '.join(flagged)}")
    print(f"report: {path}")


def cmd_check_template(args) -> None:
    from seektune import config
    from seektune.evaluate.template_check import run
    from seektune.models.loading import load_for_inference, load_tokenizer
    from seektune.runtime import set_threads

    set_threads()
    cfg = config.load(args.config, args.overrides)
    model_ref = args.model or (str(cfg.run_dir) if (cfg.run_dir / "final").is_dir() else None)
    model, tokenizer = load_for_inference(model_ref) if model_ref else (None, load_tokenizer(cfg.model))
    result = run(cfg, tokenizer, model, args.records, args.max_new_tokens)
    print("1. a training example (supervised tokens in \u27e6 \u27e7):\n" + result.example + "\n")
    print(f"2. training prefix == inference prompt: {result.prefix_checked - len(result.prefix_mismatches)}"
          f"/{result.prefix_checked} assistant turns")
    for line in result.prefix_mismatches:
        print(f"   MISMATCH {line}")
    if model_ref is None:
        print("3. stopping: skipped (no trained run yet; pass --model RUN_OR_MODEL)")
    else:
        print(f"3. {model_ref} ends its answer with the end-of-turn token: {result.stopped}/{result.stop_checked}")
        for line in result.not_stopped:
            print(f"   NO STOP {line}")
    for line in result.warnings:
        print(f"   WARNING {line}")
    if not result.ok:
        from seektune.errors import SeektuneError

        raise SeektuneError("template check failed (see above)")
    print("template check passed")


def build_parser() -> argparse.ArgumentParser:
    from seektune.config import describe

    parser = argparse.ArgumentParser(prog="seektune", description="Fine-tune causal LMs into domain experts.")
    parser.add_argument("--version", action="version", version=f"seektune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    keys = "config keys (YAML sections, or dotted.key=value on the command line):\n" + "\n".join(describe())
    p = sub.add_parser("train", help="fine-tune a model", epilog=keys, formatter_class=argparse.RawTextHelpFormatter,
                       description="Fine-tune a model from a YAML config plus dotted.key=value overrides.")
    p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", help="dotted.key=value overrides, e.g. train.learning_rate=1e-4")
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("chat", help="talk to a run, an adapter, a model directory or a packaged model",
                       description="Interactive chat, or one answer with --prompt.")
    p.add_argument("model", nargs="+", help="run directory, final/ adapter or model directory, or packaged name; "
                   "several adapter runs of one base load side by side (switch with /adapter NAME)")
    p.add_argument("--use", help="with several adapters: the one to start with (its run directory name)")
    p.add_argument("--prompt", help="answer this one prompt and exit")
    p.add_argument("--system", help="system message")
    p.add_argument("--max-new-tokens", type=int, default=256, help="generation length limit")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("adapters", help="list or combine adapters trained on one base",
                       description="List adapters under a directory, or combine several into a new one.")
    adapters = p.add_subparsers(dest="action", required=True)
    q = adapters.add_parser("list", help="list adapters (run directories and adapter directories)")
    q.add_argument("root", nargs="?", default="runs", help="directory to search (default: runs)")
    q.set_defaults(func=cmd_adapters_list)
    q = adapters.add_parser("combine", help="combine LoRA adapters (linear, TIES, DARE...) into a new adapter",
                            description="Weighted combination through peft's add_weighted_adapter.")
    q.add_argument("adapters", nargs="+", help="run directories or adapter directories (same base)")
    q.add_argument("--out", required=True, help="directory for the combined adapter")
    q.add_argument("--weights", type=float, nargs="+", help="one weight per adapter (default: equal)")
    q.add_argument("--method", default="linear", help="linear, cat, svd, ties, ties_svd, dare_linear, dare_ties, "
                   "magnitude_prune")
    q.add_argument("--density", type=float, help="TIES/DARE/pruning: fraction of each adapter's weights kept")
    q.set_defaults(func=cmd_adapters_combine)

    p = sub.add_parser("merge", help="fold an adapter into its base and save a plain transformers model",
                       description="Merge a LoRA-family or IA3 adapter into a copy of the base weights.")
    p.add_argument("adapter", help="run directory or adapter directory")
    p.add_argument("--out", required=True, help="output model directory")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("models", help="list the models seektune can load offline",
                       description="List packaged models and whether they are installed or cached.")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("demo", help="train a demo config, then compare base vs tuned on held-out questions",
                       description="Train (unless already trained) and print base vs tuned answers with scores.")
    p.add_argument("config", help="demo YAML config")
    p.add_argument("--heldout", required=True, help="JSONL of held-out {question, reference, key_fact}")
    p.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
    p.add_argument("--retrain", action="store_true", help="train again even if the run has a final model")
    p.add_argument("--max-new-tokens", type=int, default=48, help="answer length limit")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("eval", help="evaluate models (base, tuned, merged, quantized) and write a report",
                       description="Quality, domain metrics, robustness, efficiency and forgetting for several "
                       "models on the same data; resumable; report.md/json + charts.")
    p.add_argument("config", help="eval YAML (models, tasks, scorecard...)")
    p.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("check-template", help="check masks, train/inference prefix and stopping for a config",
                       description="Show a rendered example with supervised spans, check that training prefixes "
                       "equal inference prompts, and that the tuned model stops with the end-of-turn token.")
    p.add_argument("config", help="training YAML")
    p.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
    p.add_argument("--model", help="model to check stopping with (default: the config's run, if trained)")
    p.add_argument("--records", type=int, default=8, help="records checked")
    p.add_argument("--max-new-tokens", type=int, default=96, help="generation limit for the stop check")
    p.set_defaults(func=cmd_check_template)

    from seektune.cli_data import add_data_commands

    add_data_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_libraries()
    try:
        args.func(args)
    except SeektuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
