"""seektune plan CONFIG [key=value ...] [--gpus 8x80GB|1x24GB|cpu]: will this training run fit, and what would."""

from __future__ import annotations

from seektune.cli.common import config_arguments


def run(args) -> None:
    from transformers import AutoConfig

    from seektune import config
    from seektune.errors import ConfigError
    from seektune.models.loading import resolve
    from seektune.plan import hardware, report
    from seektune.plan.planner import plan

    if not 0 < args.answer_fraction <= 1:
        raise ConfigError(f"--answer-fraction {args.answer_fraction}: expected a share of tokens in (0, 1]")
    target = hardware.parse(args.gpus)   # a bad flag fails before any model config is read
    cfg = config.load(args.config, args.overrides)
    source = resolve(cfg.model.name_or_path)
    model_config = AutoConfig.from_pretrained(source, trust_remote_code=cfg.model.trust_remote_code)
    result = plan(cfg, model_config, target, args.answer_fraction)
    line = (f"method {cfg.method.name}, micro-batch {cfg.train.micro_batch_size} x {cfg.data.max_length} tokens, "
            f"checkpointing {'on' if cfg.train.gradient_checkpointing else 'off'}, sharding {cfg.train.sharding}, "
            f"{args.answer_fraction:.0%} of tokens supervised")
    print("\n".join(report.lines(result, line)))


def register(sub) -> None:
    p = sub.add_parser("plan", help="estimate a training run's memory and recommend a config that fits",
                       description="Weights, gradients, optimizer state, activations and logits of a training "
                       "config, from the model's config alone (config.json is enough: no weights are read).")
    config_arguments(p, "training YAML config")
    p.add_argument("--gpus", default="cpu", help="the hardware: NxSIZE GPUs (8x80GB, 1x24GB) or cpu (default)")
    p.add_argument("--answer-fraction", type=float, default=0.5,
                   help="share of tokens that are supervised answers (logits exist only there); default 0.5")
    p.set_defaults(func=run)
