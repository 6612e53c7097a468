"""What every verb shares: quiet third-party logging, the `CONFIG [key=value ...]` arguments, and typed
options declared once in a schema (flags, defaults and help all come from its fields)."""

from __future__ import annotations

import argparse
import logging
import os
import typing
import warnings

from pydantic import BaseModel

from seektune import schema


def quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here; hub ids resolve from the local HF cache
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # seektune's own lines at INFO even when a library configured the root logger first (absl does, at WARNING,
    # the first time rouge-score logs)
    logging.getLogger("seektune").setLevel(logging.INFO)
    # peft 0.21.2 calls an API transformers 5.23 deprecated; nothing a user can act on
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
    # "bitsandbytes": peft 0.21 imports it on `import peft` whatever the method, and on CPUs with AVX512-BF16 its
    # import warns that an optional 4-bit kernel package is missing: noise for every method that is not QLoRA.
    # "torchao" (the quantize extra) warns on import that CUDA-only kernels and triton are missing on a CPU build,
    # and registers enums with torch's pytree, which logs a deprecation for each ("torch.utils._pytree").
    for name in ("transformers", "accelerate", "peft", "httpx", "urllib3", "bitsandbytes", "torchao",
                 "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)


def config_arguments(p: argparse.ArgumentParser, what: str = "YAML config file") -> None:
    p.add_argument("config", help=what)
    p.add_argument("overrides", nargs="*", help="dotted.key=value overrides, e.g. train.learning_rate=1e-4")


def add_options(p: argparse.ArgumentParser, options: type[BaseModel]) -> None:
    """One --flag per field of `options`; defaults stay in the schema (argparse passes only what was given)."""
    for name, field in options.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if field.is_required():
            p.add_argument(flag, required=True, default=argparse.SUPPRESS, help=field.description + _choices(field))
            continue
        default = field.get_default(call_default_factory=True)
        help_text = f"{field.description} (default: {default})" if default not in (None, False) else field.description
        if field.annotation is bool:
            p.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=help_text)
        else:
            p.add_argument(flag, default=argparse.SUPPRESS, help=help_text + _choices(field))


def _choices(field) -> str:
    choices = typing.get_args(field.annotation) if typing.get_origin(field.annotation) is typing.Literal else ()
    return f"; one of {', '.join(map(str, choices))}" if choices else ""


def options(args: argparse.Namespace, options_schema: type[schema.S], command: str) -> schema.S:
    """The typed options of one command; a bad value is one line naming its flag."""
    given = {k: v for k, v in vars(args).items() if k in options_schema.model_fields}
    return schema.validate(options_schema, given, command, flags=True)
