"""seektune <verb>: each verb is one module here that declares its arguments beside its handler; handlers parse,
call one function of the layer that does the work, and print what it returns."""

from __future__ import annotations

import argparse
import sys

from seektune import __version__, allocator
from seektune.cli import (adapters, chat, check_template, data, demo, drop_layers, eval, export, generate, models, plan,
                          prune, quantize, recipe, serve, train, ui, vision)
from seektune.cli.common import quiet_libraries
from seektune.errors import SeektuneError

VERBS = (train, plan, chat, generate, serve, adapters, drop_layers, quantize, prune, export, models, demo, eval,
         check_template, data, recipe, vision, ui)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seektune", description="Fine-tune causal LMs into domain experts.")
    parser.add_argument("--version", action="version", version=f"seektune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        verb.register(sub)
    return parser


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """argparse stops collecting `key=value` overrides at the first flag; those written after one
    (`seektune train C.yaml --resume train.max_steps=10`) are overrides too."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.cli_main = main  # `data reproduce` re-runs recorded command lines through this same entry point
    quiet_libraries()
    try:
        if argv is None and args.command in ("train", "demo"):   # a training process's own command line
            allocator.reexec_with_tcmalloc()
        args.func(args)
    except SeektuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
