"""seektune train CONFIG [key=value ...] [--resume]"""

from __future__ import annotations

import argparse

from seektune.cli.common import config_arguments


def run(args) -> None:
    from seektune import config
    from seektune.train.loop import train

    train(config.load(args.config, args.overrides), resume=args.resume)


def register(sub) -> None:
    from seektune.config import describe

    keys = "config keys (YAML sections, or dotted.key=value on the command line):\n" + "\n".join(describe())
    p = sub.add_parser("train", help="fine-tune a model", epilog=keys, formatter_class=argparse.RawTextHelpFormatter,
                       description="Fine-tune a model from a YAML config plus dotted.key=value overrides.")
    config_arguments(p)
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint (from the "
                   "beginning when there is none yet, so a requeued job can always pass --resume)")
    p.set_defaults(func=run)
