"""seektune ui [--root DIR] [--host 127.0.0.1] [--port 7860] [--token T]: the web page over the same commands."""

from __future__ import annotations

import importlib.util
import os


def run(args) -> None:
    from pathlib import Path

    from seektune.errors import ConfigError
    from seektune.serve.server import is_loopback

    if importlib.util.find_spec("gradio") is None:
        raise ConfigError("the web UI needs gradio: pip install 'seektune[ui]'")
    from seektune.ui.app import launch

    root = Path(args.root).resolve()
    if not root.is_dir():
        raise ConfigError(f"--root {args.root} is not a folder")
    token = args.token or os.environ.get("SEEKTUNE_UI_TOKEN")
    if not is_loopback(args.host) and not token:
        raise ConfigError(f"--host {args.host} would put the UI (which starts training and reads the project "
                          "folder) on a network without a password; pass --token (or set SEEKTUNE_UI_TOKEN)")
    print(f"seektune ui: http://{args.host}:{args.port} (project folder {root}); Ctrl-C stops the page, not the "
          "runs it started", flush=True)
    launch(root, args.host, args.port, token)


def register(sub) -> None:
    p = sub.add_parser("ui", help="a local web page: data, train, evaluate, chat, compress and serve",
                       description="A web page over seektune's commands for the project folder: inspect, clean, "
                       "pseudonymise and check data; a train form of every config key (the equivalent command "
                       "shown), runs with live loss and lr charts, stop/resume; evaluation reports; chat with a "
                       "run beside its base; merge, quantize, export and serve.")
    p.add_argument("--root", default=".", help="the project folder: data and models are read inside it, runs go "
                   "to <root>/runs (default: here)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--token", help="password required on any address but loopback (or SEEKTUNE_UI_TOKEN)")
    p.set_defaults(func=run)
