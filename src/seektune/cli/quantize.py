"""seektune quantize MODEL --method int8|int4|nf4|gptq|awq --out DIR"""

from __future__ import annotations

from seektune.cli.common import add_options, options


def run(args) -> None:
    from seektune.compress.options import QuantizeOptions
    from seektune.compress.quantize import quantize

    opts = options(args, QuantizeOptions, "seektune quantize")
    record = quantize(args.model, opts)
    print(f"{record.summary()}\nmodel: {opts.out}")


def register(sub) -> None:
    from seektune.compress.options import QuantizeOptions

    p = sub.add_parser("quantize", help="quantize a run or model (int8, int4, NF4, GPTQ, AWQ)",
                       description="Write a weight-quantized model directory that plain transformers loads "
                       "(with the method's library installed). Adapters are merged into their base first; GPTQ "
                       "and AWQ calibrate on the run's own training data unless --calibration is given.")
    p.add_argument("model", help="run directory, model or adapter directory, or packaged name")
    add_options(p, QuantizeOptions)
    p.set_defaults(func=run)
