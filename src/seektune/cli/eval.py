"""seektune eval EVAL.yaml [key=value ...]: several models, every metric, one report."""

from __future__ import annotations

from seektune.cli.common import config_arguments


def run(args) -> None:
    from seektune.evaluate import eval_config, report
    from seektune.evaluate.results import collect, summary_lines
    from seektune.evaluate.runner import Runner

    cfg = eval_config.load(args.config, args.overrides)
    runner = Runner(cfg)
    runner.run()
    result = collect(runner)
    path = report.write(result, runner.out, cfg.forgetting.threshold)
    print("\n".join([*summary_lines(result), f"report: {path}"]))


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate models (base, tuned, merged, quantized) and write a report",
                       description="Quality, domain metrics, robustness, efficiency and forgetting for several "
                       "models on the same data; resumable; report.md/json + charts.")
    config_arguments(p, "eval YAML (models, tasks, scorecard...)")
    p.set_defaults(func=run)
