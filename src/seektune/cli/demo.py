"""seektune demo CONFIG --heldout FILE: train (unless trained), then base vs tuned on held-out questions."""

from __future__ import annotations

from pathlib import Path

from seektune.cli.common import config_arguments


def run(args) -> None:
    from seektune import config
    from seektune.demo import compare, write_report
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
    text, path = write_report(cfg, compare(cfg, Path(args.heldout), args.max_new_tokens))
    print(f"{text}\n\nreport: {path}")


def register(sub) -> None:
    p = sub.add_parser("demo", help="train a demo config, then compare base vs tuned on held-out questions",
                       description="Train (unless already trained) and print base vs tuned answers with scores.")
    config_arguments(p, "demo YAML config")
    p.add_argument("--heldout", required=True, help="JSONL of held-out {question, reference, key_fact}")
    p.add_argument("--retrain", action="store_true", help="train again even if the run has a final model")
    p.add_argument("--max-new-tokens", type=int, default=48, help="answer length limit")
    p.set_defaults(func=run)
