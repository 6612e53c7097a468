"""The train form: its fields are keys of the training config (help text from the schema itself), its values
become a config YAML validated by the same loader `seektune train` uses, and the page shows the command line that
trains the same run. The UI never trains by another road."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from seektune.atomic import write_text
from seektune.config import Config
from seektune.errors import ConfigError
from seektune.schema import validate


@dataclass(frozen=True)
class FormField:
    key: str             # dotted config key
    label: str

    @property
    def help(self) -> str:
        """The schema's own description of the key (what `seektune train --help` prints)."""
        node: Any = Config
        for part in self.key.split("."):
            field = node.model_fields[part]
            node = field.annotation
        return field.description or ""


FIELDS = [FormField("model.name_or_path", "model"), FormField("method.name", "method"),
          FormField("data.train", "training data"), FormField("train.max_steps", "steps"),
          FormField("train.learning_rate", "learning rate"), FormField("train.micro_batch_size", "micro-batch"),
          FormField("data.max_length", "max length"), FormField("method.lora.r", "LoRA rank"),
          FormField("output.name", "run name")]


def inside(root: Path, path: str, what: str) -> Path:
    """A path the form names, resolved against `root`; anything outside it is refused (the UI browses no more
    of the file system than the folder it was started in)."""
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ConfigError(f"{what}: {path} is outside {root}; the UI reads files in the folder it was started in")
    return resolved


def config_tree(root: Path, values: dict[str, Any]) -> dict:
    """The nested training config of the form's values (keys of FIELDS); data files and local models resolved
    inside `root`, the run written to <root>/runs/<name>."""
    tree: dict = {}
    for key, value in values.items():
        if value is None or value == "":
            continue
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    files = [f.strip() for f in str(values.get("data.train") or "").replace(",", "\n").splitlines() if f.strip()]
    tree.setdefault("data", {})["train"] = [str(inside(root, f, "training data")) for f in files]
    model = str(values.get("model.name_or_path") or "")
    if model and ("/" in model or (root / model).exists()):
        tree["model"]["name_or_path"] = str(inside(root, model, "model"))
    tree.setdefault("output", {}).update(dir=str(root / "runs"), overwrite=True)
    return tree


def check(tree: dict) -> Config:
    """The config `seektune train` would run, or a ConfigError naming the key that is wrong."""
    return validate(Config, tree, "the train form")


def write(tree: dict, root: Path) -> tuple[Path, Config]:
    """The form's config as <root>/.seektune-ui/configs/<run>.yaml (what the started process and the shown
    command read), and the validated config."""
    cfg = check(tree)
    path = root / ".seektune-ui" / "configs" / f"{cfg.output.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, yaml.safe_dump(tree, sort_keys=False, allow_unicode=True))
    return path, cfg


def command_line(config: Path) -> str:
    return shlex.join(["seektune", "train", str(config)])
