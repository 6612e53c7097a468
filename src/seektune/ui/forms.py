"""The train form is the training config: one field per key of the schema (its help text, default and choices
from the schema itself), the values become a config YAML validated by the same loader `seektune train` uses, and
each validation error is given back to the field it names. The UI never trains by another road."""

from __future__ import annotations

import shlex
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from seektune.atomic import write_text
from seektune.config import Config
from seektune.errors import ConfigError
from seektune.models.registry import names_a_path
from seektune.schema import format_errors, section_model, set_in
from seektune.ui.jobs import RUN_NAME, STATE_DIR

NONE = "(not set)"   # the choice that means "not set" in a dropdown of an optional key


@dataclass(frozen=True)
class FormField:
    key: str                  # dotted config key; an optional section's own key is a "section" switch
    kind: str                 # bool | int | float | choice | text | files | yaml | section
    default: Any
    help: str
    choices: tuple = ()
    optional: bool = False    # None is a valid value

    @property
    def label(self) -> str:
        return self.key       # the YAML key itself: what the page shows is what the config file says

    @property
    def elem_id(self) -> str:
        return "cfg-" + self.key.replace(".", "-").replace("_", "-")

    def shown_default(self) -> Any:
        """The default as the page's widget holds it."""
        if self.kind == "choice":
            return NONE if self.default is None else str(self.default)
        if self.kind == "yaml":
            return "" if self.default in ([], {}, None) else yaml.safe_dump(self.default,
                                                                              default_flow_style=True).strip()
        if self.kind in ("text", "files"):
            return self.default or ""
        if self.kind in ("int", "float") and self.optional:   # a text box: empty is "not set"
            return "" if self.default is None else str(self.default)
        return self.default


def _kind(annotation: Any) -> tuple[str, tuple, bool]:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = type(None) in typing.get_args(annotation)
    inner = args[0] if optional and len(args) == 1 else annotation
    if typing.get_origin(inner) is Literal:
        return "choice", typing.get_args(inner), optional
    literals = [a for a in args if typing.get_origin(a) is Literal]
    if literals and set(args) == {*literals, bool}:   # `auto` or a switch (train.compile)
        return "choice", (*(c for a in literals for c in typing.get_args(a)), True, False), optional
    if inner is bool:
        return "bool", (), optional
    if inner is int:
        return "int", (), optional
    if inner is float:
        return "float", (), optional
    if inner is str:
        return "text", (), optional
    return "yaml", (), optional     # lists, mappings, str | list[str]: written as YAML in one line


def schema_fields(model: type[BaseModel] = Config, prefix: str = "") -> list[FormField]:
    """Every key of the schema, in its order; `data.train` / `data.eval` are file lists, and an optional section
    (`continual.ewc`) is a switch followed by its own keys."""
    out: list[FormField] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        default = field.get_default(call_default_factory=True)
        help_text = field.description or ""
        section = section_model(field.annotation)
        if key in ("data.train", "data.eval"):
            out.append(FormField(key, "files", "", help_text + " (files in the project folder, one per line; a "
                                 "line may be a mapping: {path: med.jsonl, domain: medical, weight: 2})"))
        elif section is not None and default is None:
            out.append(FormField(key, "section", False, help_text, optional=True))
            out.extend(schema_fields(section, key + "."))
        elif section is not None:
            out.extend(schema_fields(section, key + "."))
        else:
            kind, choices, optional = _kind(field.annotation)
            out.append(FormField(key, kind, default, help_text, choices, optional))
    return out


FIELDS = schema_fields()
BY_KEY = {f.key: f for f in FIELDS}
SECTIONS = [f for f in FIELDS if f.kind == "section"]
# resolved inside the project folder when given (the page reads no file outside it)
PROJECT_FILES = {"data.train": "training data", "data.eval": "evaluation data", "train.term_file": "term file"}
PROJECT_MODELS = {"model.name_or_path": "model", "objective.teacher": "teacher model"}
PROJECT_RUNS = {"continual.previous": "earlier run", "continual.replay.data": "replayed run"}


def inside(root: Path, path: str, what: str) -> Path:
    """A path the form names, resolved against `root`; anything outside it is refused (the UI browses no more
    of the file system than the folder it was started in)."""
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ConfigError(f"{what}: {path} is outside {root}; the UI reads files in the folder it was started in")
    return resolved


def _value(field: FormField, raw: Any) -> Any:
    """The config value of a widget's value; raises ValueError with the reason."""
    if field.kind == "choice":
        if raw in (None, "", NONE) and field.optional:
            return None
        return next((c for c in field.choices if str(c) == str(raw)), raw)
    if field.kind in ("int", "float"):
        if raw is None or str(raw).strip() == "":
            return None
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
        return int(number) if field.kind == "int" and number == int(number) else number
    if field.kind == "yaml":
        text = str(raw or "").strip()
        if not text:
            return field.default
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    if field.kind == "text":
        text = str(raw or "")
        return None if not text.strip() and field.optional else text
    return raw


def is_path(root: Path, name: str) -> bool:
    """A name the page must read as a folder (checked to be inside the project): one that can only be a path, or
    one the project holds; anything else is a packaged name or hub id."""
    return names_a_path(name) or (root / name).exists()


def _model_path(root: Path, name: str, what: str) -> str:
    """A packaged or hub name stays as it is; a folder is resolved inside the project."""
    return str(inside(root, name, what)) if is_path(root, name) else name


def _rewards(root: Path, rewards: list) -> list:
    """GRPO rewards: a `model:<dir>` reward model is read inside the project like any other folder."""
    return [f"model:{inside(root, r[len('model:'):], 'reward model')}" if isinstance(r, str) and
            r.startswith("model:") else r for r in rewards]


def _files(root: Path, text: str, what: str) -> list:
    """A file list: a path per line, or a line holding a mapping with the file's domain, weight or format."""
    files: list = []
    for line in (line.strip() for line in text.splitlines()):
        if not line:
            continue
        if line.startswith("{"):
            try:
                entry = yaml.safe_load(line)
            except yaml.YAMLError as exc:
                raise ValueError(f"{line}: not a valid mapping ({str(exc).splitlines()[0]})") from None
            if not isinstance(entry, dict) or "path" not in entry:
                raise ValueError(f"{line}: a mapping needs a path: {{path: FILE, domain: NAME, weight: 1}}")
            files.append({**entry, "path": str(inside(root, str(entry["path"]), what))})
        else:
            files.extend(str(inside(root, f.strip(), what)) for f in line.split(",") if f.strip())
    return files


def config_tree(root: Path, values: dict[str, Any]) -> tuple[dict, dict[str, str]]:
    """The nested training config of the form's values (keys of FIELDS), holding only what differs from the
    schema's defaults, and the problems found before validation (key -> message). Files and local models are
    resolved inside `root`; runs go to <root>/runs unless output.dir says another folder in the project."""
    tree: dict = {}
    problems: dict[str, str] = {}
    enabled = {f.key for f in SECTIONS if values.get(f.key)}
    for key, raw in values.items():
        field = BY_KEY[key]
        if field.kind == "section":
            continue
        try:
            value = _value(field, raw)
            if field.kind == "files":
                value = _files(root, str(raw or ""), PROJECT_FILES[key])
            elif key in PROJECT_FILES and value:
                value = str(inside(root, value, PROJECT_FILES[key]))
            elif key in PROJECT_MODELS and value:
                value = _model_path(root, value, PROJECT_MODELS[key])
            elif key in PROJECT_RUNS and isinstance(value, list):
                value = [str(inside(root, str(v), PROJECT_RUNS[key])) for v in value]
            elif key == "objective.rewards" and isinstance(value, list):
                value = _rewards(root, value)
        except (ValueError, ConfigError) as exc:
            problems[key] = str(exc)
            continue
        owner = next((s.key for s in SECTIONS if key.startswith(s.key + ".")), None)
        if owner is not None and owner not in enabled:
            continue   # a key of an optional section that is switched off
        if value == field.default or (field.kind == "files" and not value):
            continue
        set_in(tree, key.split("."), value)
    for key in enabled:   # a switched-on section with every key at its default
        node = tree
        for part in key.split("."):
            node = node.setdefault(part, {})
    output = tree.setdefault("output", {})
    if not RUN_NAME.fullmatch(str(output.get("name", "run"))):   # it names files under .seektune-ui/ and runs/
        problems["output.name"] = "letters, digits, '.', '_' and '-' only (it names the run's folder)"
    try:
        output["dir"] = str(inside(root, output.get("dir", "runs"), "output.dir"))
        state = (root / STATE_DIR).resolve()
        if Path(output["dir"]) == state or state in Path(output["dir"]).parents:
            problems["output.dir"] = f"{STATE_DIR} holds the UI's own state (keys, records): runs go elsewhere"
    except ConfigError as exc:
        problems["output.dir"] = str(exc)
    return tree, problems


def field_errors(tree: dict) -> tuple[Config | None, dict[str, str], str]:
    """Validate as `seektune train` would: (the config, or None; each problem under the form key it names;
    the whole message, for problems no single field owns)."""
    try:
        return Config.model_validate(tree), {}, ""
    except ValidationError as exc:
        by_key: dict[str, str] = {}
        for error in exc.errors():
            parts = [str(p) for p in error["loc"] if not isinstance(p, int)]
            message = error["msg"].removeprefix("Value error, ")
            while parts and ".".join(parts) not in BY_KEY:
                parts.pop()
            key = ".".join(parts)
            named = (message.split() or [""])[0].rstrip(":,")   # "data.train: at least one file is required"
            key = named if named in BY_KEY else key
            by_key[key or ""] = message
        return None, by_key, format_errors(exc, "the train form", Config)


def check(tree: dict) -> Config:
    """The config `seektune train` would run, or a ConfigError naming the key that is wrong."""
    cfg, _, message = field_errors(tree)
    if cfg is None:
        raise ConfigError(message)
    return cfg


def write(tree: dict, root: Path) -> tuple[Path, Config]:
    """The form's config as <root>/.seektune-ui/configs/<run>.yaml (what the started process and the shown
    command read), and the validated config."""
    cfg = check(tree)
    path = root / STATE_DIR / "configs" / f"{cfg.output.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, yaml.safe_dump(tree, sort_keys=False, allow_unicode=True))
    return path, cfg


def form_values(tree: dict) -> dict[str, Any]:
    """A config (e.g. an example's YAML, or a run's saved config) as the form's widget values."""
    values: dict[str, Any] = {}
    for field in FIELDS:
        node: Any = tree
        for part in field.key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if field.kind == "section":
            values[field.key] = node is not None
        elif field.kind == "files":
            items = node if isinstance(node, list) else [node] if node else []
            values[field.key] = "\n".join(
                (i["path"] if set(i) == {"path"} else yaml.safe_dump(i, default_flow_style=True).strip())
                if isinstance(i, dict) else str(i) for i in items)
        elif node is None:
            values[field.key] = field.shown_default()
        elif field.kind == "choice" or field.kind in ("int", "float") and field.optional:
            values[field.key] = str(node)
        elif field.kind == "yaml":
            values[field.key] = node if isinstance(node, str) else yaml.safe_dump(node, default_flow_style=True).strip()
        else:
            values[field.key] = node
    return values


def command_line(config: Path) -> str:
    return shlex.join(["seektune", "train", str(config)])
