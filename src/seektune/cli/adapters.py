"""seektune adapters list | combine, and seektune merge."""

from __future__ import annotations


def run_list(args) -> None:
    from seektune.artifacts import find

    found = find(args.root)
    if not found:
        print(f"no adapters under {args.root}")
    for a in found:
        print(f"{a.name:24s} {a.method:10s} {a.describe():28s} {a.path}\n{'':24s} base: {a.base_model}")


def run_combine(args) -> None:
    from seektune.artifacts import combine

    print(f"combined adapter: {combine(args.adapters, args.out, args.weights, args.method, args.density)}")


def run_merge(args) -> None:
    from seektune.artifacts import open_artifact

    print(f"merged model: {open_artifact(args.adapter).merge(args.out)}")


def register(sub) -> None:
    from seektune.method_config import COMBINATIONS

    p = sub.add_parser("adapters", help="list or combine adapters trained on one base",
                       description="List adapters under a directory, or combine several into a new one.")
    adapters = p.add_subparsers(dest="action", required=True)
    q = adapters.add_parser("list", help="list adapters (run directories and adapter directories)")
    q.add_argument("root", nargs="?", default="runs", help="directory to search (default: runs)")
    q.set_defaults(func=run_list)
    q = adapters.add_parser("combine", help="combine LoRA adapters (linear, TIES, DARE...) into a new adapter",
                            description="Weighted combination through peft's add_weighted_adapter.")
    q.add_argument("adapters", nargs="+", help="run directories or adapter directories (same base)")
    q.add_argument("--out", required=True, help="directory for the combined adapter")
    q.add_argument("--weights", type=float, nargs="+", help="one weight per adapter (default: equal)")
    q.add_argument("--method", default="linear", help=", ".join(COMBINATIONS))
    q.add_argument("--density", type=float, help="TIES/DARE/pruning: fraction of each adapter's weights kept")
    q.set_defaults(func=run_combine)

    p = sub.add_parser("merge", help="fold an adapter into its base and save a plain transformers model",
                       description="Merge a LoRA-family or IA3 adapter into a copy of the base weights.")
    p.add_argument("adapter", help="run directory or adapter directory")
    p.add_argument("--out", required=True, help="output model directory")
    p.set_defaults(func=run_merge)
