"""seektune serve RUN [RUN ...]: an OpenAI-compatible server for a tuned run, a model, or several adapters."""

from __future__ import annotations

from seektune.cli.common import add_options, options


def run(args) -> None:
    from seektune.runtime import set_threads
    from seektune.serve.options import ServeOptions
    from seektune.serve.server import serve

    opts = options(args, ServeOptions, "seektune serve")
    set_threads(opts.threads)
    serve(args.model, opts)


def register(sub) -> None:
    from seektune.serve.options import ServeOptions

    p = sub.add_parser("serve", help="serve runs or models through an OpenAI-compatible API",
                       description="OpenAI-compatible server (/v1/chat/completions, /v1/completions, /v1/models, "
                       "/health, /metrics). One adapter is served merged into its base; several adapters of one "
                       "base share the process and each request picks one by its run name.")
    p.add_argument("model", nargs="+", help="run directory, adapter or model directory, or packaged name; several "
                   "adapter runs of one base are served side by side")
    add_options(p, ServeOptions)
    p.set_defaults(func=run)
