"""seektune check-template CONFIG: masks, train/inference prefix, end-of-turn stopping."""

from __future__ import annotations

from seektune.cli.common import config_arguments


def run(args) -> None:
    from seektune import config
    from seektune.artifacts import load_for_inference
    from seektune.errors import SeektuneError
    from seektune.evaluate.template_check import run as check
    from seektune.models.loading import load_tokenizer
    from seektune.runtime import set_threads

    set_threads()
    cfg = config.load(args.config, args.overrides)
    model_ref = args.model or (str(cfg.run_dir) if (cfg.run_dir / "final").is_dir() else None)
    model, tokenizer = load_for_inference(model_ref) if model_ref else (None, load_tokenizer(cfg.model))
    result = check(cfg, tokenizer, model, args.records, args.max_new_tokens)
    print("\n".join(result.lines(model_ref)))
    if not result.ok:
        raise SeektuneError("template check failed (see above)")
    print("template check passed")


def register(sub) -> None:
    p = sub.add_parser("check-template", help="check masks, train/inference prefix and stopping for a config",
                       description="Show a rendered example with supervised spans, check that training prefixes "
                       "equal inference prompts, and that the tuned model stops with the end-of-turn token.")
    config_arguments(p, "training YAML")
    p.add_argument("--model", help="model to check stopping with (default: the config's run, if trained)")
    p.add_argument("--records", type=int, default=8, help="records checked")
    p.add_argument("--max-new-tokens", type=int, default=96, help="generation limit for the stop check")
    p.set_defaults(func=run)
