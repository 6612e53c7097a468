"""The machinery every typed config shares (train, eval, data-step options): strict sections, YAML reading,
`dotted.key=value` overrides, validation errors that name the key (or the command-line flag) and the closest
valid key of the schema being loaded, and `--help` text from the field descriptions."""

from __future__ import annotations

import difflib
import re
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from seektune.errors import ConfigError

S = TypeVar("S", bound=BaseModel)


class Section(BaseModel):
    """The base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# Names other tools use for our keys; a typo hint difflib cannot find.
_SYNONYMS = {"rank": "r", "alpha": "lora_alpha", "dropout": "lora_dropout", "lr": "learning_rate",
             "batch_size": "micro_batch_size", "grad_accum": "gradient_accumulation_steps",
             "num_epochs": "epochs", "num_train_epochs": "epochs", "model_name_or_path": "name_or_path",
             "cutoff_len": "max_length", "max_seq_length": "max_length", "output_dir": "dir"}


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The section a field holds: the model itself, or the one inside `Section | None` or `list[Section]`."""
    candidates = [annotation, *typing.get_args(annotation)]
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)


def _section_for(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Walk the schema along a pydantic error location to the model that owns the last key."""
    model = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        nxt = section_model(field.annotation)
        if nxt is None:
            return None
        model = nxt
    return model


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def format_errors(err: ValidationError, source: str, root: type[BaseModel], flags: bool = False) -> str:
    """One line per problem, naming the dotted key (or the --flag) and, for unknown keys, the closest valid one."""
    lines = [f"invalid {'options' if flags else 'config'} ({source}):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        shown = _flag(key) if flags and key else key
        if e["type"] == "extra_forbidden":
            owner = _section_for(root, e["loc"])
            names = list(owner.model_fields) if owner else []
            typo = str(e["loc"][-1])
            close = [_SYNONYMS[typo]] if _SYNONYMS.get(typo) in names else difflib.get_close_matches(typo, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys here: {', '.join(names)}"
            lines.append(f"  {shown}: unknown key{hint}")
        else:
            got = e.get("input")
            got_text = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
            lines.append(f"  {shown or '<root>'}: {e['msg']}{got_text}")
    return "\n".join(lines)


def validate(schema: type[S], tree: dict[str, Any], source: str, flags: bool = False) -> S:
    try:
        return schema.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, source, schema, flags)) from None


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like dotted.key=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def set_in(tree: dict[str, Any], keys: list[str], value: Any, source: str = "") -> None:
    """tree[k1][k2]...[kn] = value, making the sections on the way; `source` leads the error when a key on the
    way holds a value rather than a section."""
    node = tree
    for k in keys[:-1]:
        if not isinstance(node.get(k, {}), dict):
            raise ConfigError(f"{source}'{k}' is not a section")
        node = node.setdefault(k, {})
    node[keys[-1]] = value


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set `a.b.c=value` items into a nested dict; values are parsed as YAML scalars or lists."""
    for item in overrides:
        keys, value = _parse_override(item)
        set_in(tree, keys, value, f"override '{item}': ")
    return tree


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's top-level mapping, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return tree


def beside(path: str, base: Path) -> str:
    """A relative path that does not exist from the working directory is read relative to the YAML file."""
    if not Path(path).is_absolute() and not Path(path).exists() and (base / path).exists():
        return str(base / path)
    return path


def describe(model: type[BaseModel], prefix: str = "", leaves: tuple[type, ...] = ()) -> list[str]:
    """One line per key with its default and help (`--help`); sections in `leaves` are shown as one value."""
    lines: list[str] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        section = section_model(field.annotation)
        if section is field.annotation and section not in leaves:
            lines.extend(describe(section, key + ".", leaves))
            continue
        default = field.get_default(call_default_factory=True)
        lines.append(f"  {key} = {default!r}\n      {field.description or ''}")
        if section is not None and section not in leaves:   # `section | None`: off by default, its keys when given
            lines.extend(describe(section, key + ".", leaves))
    return lines


# decoder-layer lists in config and on the command line: "0-11", "0-3, 8", "0-28:2"
_PART = r"\s*\d+(\s*-\s*\d+(\s*:\s*\d+)?)?\s*"
LAYER_LIST = re.compile(rf"^{_PART}(,{_PART})*$")


def parse_layers(spec: str) -> list[int]:
    """"0-3, 7" -> [0, 1, 2, 3, 7]; a step after a range: "0-28:2" -> [0, 2, ..., 28]."""
    if not LAYER_LIST.match(spec):
        raise ValueError(f"{spec!r} is not a layer list like '0-11', '0-3, 8' or '0-28:2'")
    out: set[int] = set()
    for part in spec.split(","):
        span, _, step = part.partition(":")
        lo, _, hi = span.strip().partition("-")
        out.update(range(int(lo), int(hi or lo) + 1, int(step or 1)))
    return sorted(out)
