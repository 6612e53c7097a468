"""The evaluate tab: the models and the task the page names become an eval YAML, `seektune eval` runs it as its
own process (resumable, as from the command line), and the page reads back its report and charts."""

from __future__ import annotations

from pathlib import Path

import yaml

from seektune.atomic import write_text
from seektune.errors import ConfigError
from seektune.evaluate.eval_config import EvalConfig
from seektune.schema import validate
from seektune.ui import forms
from seektune.ui.jobs import RUN_NAME, STATE_DIR
from seektune.ui.project import report_text, split_names

TASK_TYPES = ("generation", "perplexity")   # the ones that need nothing beyond a data file


def eval_tree(root: Path, models: dict[str, str], data: str, task_type: str, limit: int,
              max_new_tokens: int, name: str, system_prompt: str | None = None, general: str = "") -> dict:
    """An eval config: every model on a task per project file in `data` (one per line; asked with `system_prompt`
    where records have none, as training added it) and, for the forgetting check against the first model, a
    general task per file in `general`; written under .seektune-ui/evals/<name>/."""
    if not models:
        raise ConfigError("choose at least one model to evaluate")
    if not max_new_tokens or int(max_new_tokens) < 1:
        raise ConfigError("answer length: at least 1 token")
    if not RUN_NAME.fullmatch(name or ""):   # it names the evaluation's folder and YAML
        raise ConfigError(f"evaluation name {name!r}: letters, digits, '.', '_' and '-' only")
    system = {"system_prompt": system_prompt.strip()} if (system_prompt or "").strip() else {}
    tasks: list[dict] = []
    for files, extra in ((data, {"type": task_type, "limit": int(limit or 0)}), (general, {"general": True})):
        for line in split_names(files or ""):
            source = forms.inside(root, line, "evaluation data")
            names = {t["name"] for t in tasks}
            task = next(n for i in range(len(names) + 1) if (n := source.stem + (f"-{i}" if i else "")) not in names)
            tasks.append({"name": task, "data": str(source), **extra, **system})
    if not any(not t.get("general") for t in tasks):
        raise ConfigError("name at least one evaluation data file")
    tree = {"models": [{"name": label, "path": path} for label, path in models.items()], "tasks": tasks,
            "generation": {"max_new_tokens": int(max_new_tokens), "batch_size": 8},
            "efficiency": {"prompts": 2, "max_new_tokens": 8},
            "output_dir": str(root / STATE_DIR / "evals" / name)}
    validate(EvalConfig, tree, "the evaluate tab")
    return tree


def write(tree: dict, root: Path, name: str) -> Path:
    path = root / STATE_DIR / "evals" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, yaml.safe_dump(tree, sort_keys=False, allow_unicode=True))
    return path


def report(output_dir: Path) -> tuple[str, list]:
    """report.md without its image links, and the charts as images (the page shows them itself)."""
    from PIL import Image

    text = report_text(output_dir / "report.md")
    charts = [Image.open(p).copy() for p in sorted((output_dir / "charts").glob("*.png"))]
    return text, charts
