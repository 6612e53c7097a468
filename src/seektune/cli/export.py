"""seektune export MODEL --format gguf [--type f16|q8_0|q4_0] --out model.gguf"""

from __future__ import annotations

from seektune.cli.common import add_options, options


def run(args) -> None:
    from seektune.compress.export import export
    from seektune.compress.options import ExportOptions

    opts = options(args, ExportOptions, "seektune export")
    record = export(args.model, opts)
    stem = opts.out[:-len(".gguf")]
    print(f"{record.summary()}\nmodel: {opts.out}\nOllama: ollama create {stem.rsplit('/', 1)[-1]} -f {stem}.Modelfile")


def register(sub) -> None:
    from seektune.compress.options import ExportOptions

    p = sub.add_parser("export", help="export a run or model as one GGUF file (llama.cpp, Ollama)",
                       description="Write a GGUF file (Llama and Qwen2 architectures) with the chat template in its "
                       "metadata, and an Ollama Modelfile beside it. Adapters are merged into their base first.")
    p.add_argument("model", help="run directory, model or adapter directory, or packaged name")
    add_options(p, ExportOptions)
    p.set_defaults(func=run)
