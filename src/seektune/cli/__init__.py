"""seektune <verb>: each verb is one module here that declares its arguments beside its handler; handlers parse,
call one function of the layer that does the work, and print what it returns."""

from __future__ import annotations

import argparse
import sys

from seektune import __version__
from seektune.cli import (adapters, chat, check_template, data, demo, drop_layers, eval, export, generate, models, prune,
                          quantize, recipe, serve, train)
from seektune.cli.common import quiet_libraries
from seektune.errors import SeektuneError

VERBS = (train, chat, generate, serve, adapters, drop_layers, quantize, prune, export, models, demo, eval, check_template,
         data, recipe)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seektune", description="Fine-tune causal LMs into domain experts.")
    parser.add_argument("--version", action="version", version=f"seektune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        verb.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.cli_main = main  # `data reproduce` re-runs recorded command lines through this same entry point
    quiet_libraries()
    try:
        args.func(args)
    except SeektuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
