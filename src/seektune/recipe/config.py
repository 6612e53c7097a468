"""The typed recipe file: variables, then stages. A stage runs one seektune command, or asks a served model one
question through the official OpenAI client. `${name}` in a stage is replaced by the variable's value."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from string import Template
from typing import Any

import yaml
from pydantic import Field, model_validator

from seektune.errors import ConfigError
from seektune.schema import Section, read_yaml, validate


class AskStage(Section):
    model: str = Field(description="what `seektune serve` serves: a run, model directory or GGUF file")
    prompt: str = Field(description="the user message sent")
    system: str | None = Field(None, description="system message (none: whatever the chat template adds)")
    max_tokens: int = Field(96, gt=0, description="answer length limit")
    expect_citation: bool = Field(False, description="fail unless the answer cites a law (《》 or a known name)")
    out: str = Field(description="JSON file the question and answer are written to")


class Stage(Section):
    name: str = Field(description="stage name: shown, logged, and used by --from")
    run: str | None = Field(None, description="seektune command line without `seektune`, e.g. 'data legal ...'")
    ask: AskStage | None = Field(None, description="start the server, ask one question, stop it")
    outputs: list[str] = Field(default_factory=list, description="files the stage makes; it is done again when "
                               "one is missing")
    env: dict[str, str] = Field(default_factory=dict, description="environment variables for this stage")

    @model_validator(mode="after")
    def _one_action(self) -> "Stage":
        if (self.run is None) == (self.ask is None):
            raise ValueError(f"stage {self.name}: give exactly one of run or ask")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
            raise ValueError(f"stage name {self.name!r}: letters, digits, - and _ only")
        return self


class Recipe(Section):
    description: str = Field("", description="what the recipe builds, shown when it starts")
    vars: dict[str, str] = Field(default_factory=dict, description="name -> value, replaced as ${name}; set them "
                                 "on the command line as name=value (after loading: every value, work included)")
    work: str = Field(description="the folder the stages write into (relative: to the recipe file); the recipe's "
                      "state, logs and timings go in <work>/recipe/")
    files: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="file name -> YAML mapping written to <work>/<name> before the stages run "
        "(the train and eval configs of the road, with ${name} replaced; a value that is only ${name} keeps the "
        "variable's YAML type)")
    stages: list[Stage] = Field(description="run in order; a finished stage is skipped when run again")

    @model_validator(mode="after")
    def _names(self) -> "Recipe":
        names = [s.name for s in self.stages]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"stages: give at least one, with distinct names (got {names})")
        return self

    def stage(self, name: str) -> int:
        names = [s.name for s in self.stages]
        if name not in names:
            raise ConfigError(f"no stage {name!r}; the stages are {names}")
        return names.index(name)


def _substitute(text: str, values: dict[str, str], where: str) -> str:
    try:
        return Template(text).substitute(values)
    except KeyError as exc:
        raise ConfigError(f"{where}: ${{{exc.args[0]}}} is not a variable (vars: {sorted(values)})") from None
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc} (write $$ for a literal $)") from None


def _substitute_tree(node: Any, values: dict[str, str], where: str) -> Any:
    if isinstance(node, dict):
        return {k: _substitute_tree(v, values, f"{where}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute_tree(v, values, f"{where}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node
    text = _substitute(node, values, where)
    whole = re.fullmatch(r"\$\{?(\w+)\}?", node.strip())
    return yaml.safe_load(text) if whole and text.strip() else text


def load(path: str | Path, overrides: dict[str, str] | None = None) -> Recipe:
    """The recipe with command-line variables applied and every ${name} replaced, then validated once (so a
    typed field may hold a variable). `work` (the folder, made absolute) and `recipe_dir` (the recipe's folder)
    are variables too; `work` is set on the command line like the others."""
    path = Path(path)
    recipe_dir = path.resolve().parent
    tree = read_yaml(path)
    declared = tree.get("vars") or {}
    if not isinstance(declared, dict) or not all(isinstance(v, (str, int, float)) for v in declared.values()):
        raise ConfigError(f"{path}: vars is a mapping of name -> text or number")
    for reserved in ("work", "recipe_dir"):
        if reserved in declared:
            raise ConfigError(f"{path}: vars: {reserved!r} is set by the recipe itself (work: the top-level `work:` "
                              "key; recipe_dir: the folder of the recipe file)")
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(declared) - {"work"}
    if unknown:
        raise ConfigError(f"unknown recipe variable(s) {sorted(unknown)}; this recipe has "
                          f"{sorted([*declared, 'work'])}")
    values = {str(k): str(v) for k, v in declared.items()}
    values.update({k: v for k, v in overrides.items() if k != "work"}, recipe_dir=str(recipe_dir))
    if not overrides.get("work") and not tree.get("work"):
        raise ConfigError(f"{path}: work: give the folder the stages write into, e.g. work: ../../runs/demo")
    work = overrides.get("work") or _substitute(str(tree["work"]), values, "work")
    values["work"] = str((recipe_dir / work).resolve())   # absolute: every stage and config reads one folder
    substituted = {k: (v if k in ("vars", "description") else _substitute_tree(v, values, k)) for k, v in tree.items()}
    substituted.update(vars=values, work=values["work"])
    return validate(Recipe, substituted, str(path))


def argv(stage: Stage) -> list[str]:
    """The stage's command as arguments: split like a shell, so a variable holding several words gives several."""
    try:
        return shlex.split(stage.run or "")
    except ValueError as exc:
        raise ConfigError(f"stage {stage.name}.run: {exc}") from None


def parse_assignments(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"recipe variable {item!r}: write name=value, e.g. model=smollm2-135m-instruct")
        out[name] = value
    return out
