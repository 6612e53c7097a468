"""seektune prune MODEL --method l1-channels|activation-channels|wanda|magnitude --sparsity 0.3 --out DIR"""

from __future__ import annotations

from seektune.cli.common import add_options, options


def run(args) -> None:
    from seektune.compress.options import PruneOptions
    from seektune.compress.prune import prune

    opts = options(args, PruneOptions, "seektune prune")
    record = prune(args.model, opts)
    m = record.measured
    kept = f"{m['parameters_before']:,} -> {m['parameters_after']:,} parameters"
    extra = f", {m['sparsity']:.1%} of decoder weights zero" if "sparsity" in m else ""
    print(f"{record.summary()}; {kept}{extra}\nmodel: {opts.out}")


def register(sub) -> None:
    from seektune.compress.options import PruneOptions

    p = sub.add_parser("prune", help="prune a run or model (channels by L1 or activations, Wanda, magnitude)",
                       description="l1-channels and activation-channels remove whole MLP channels (by weight L1 "
                       "norm, or by activation-aware importance on calibration data; with --prune-heads also "
                       "attention KV groups) in --steps rounds with --recover-steps of fine-tuning between them: "
                       "a smaller dense model. wanda and magnitude zero weights inside the matrices (same size and "
                       "speed on dense kernels). Adapters are merged into their base first.")
    p.add_argument("model", help="run directory, model or adapter directory, or packaged name")
    add_options(p, PruneOptions)
    p.set_defaults(func=run)
