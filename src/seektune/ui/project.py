"""The project folder the page serves: where the UI keeps its state (<root>/.seektune-ui), how it runs a seektune
command (as its own process, in the project folder: the page's work goes through the CLI, never around it), and
how a name typed in the page becomes a model reference."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from seektune.ui import forms
from seektune.ui.jobs import STATE_DIR, Jobs


@dataclass
class Project:
    root: Path
    jobs: Jobs = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.jobs = Jobs(self.root)

    def state(self, *parts: str) -> Path:
        """A path under <root>/.seektune-ui (configs, uploads, data step outputs, evaluations, servers)."""
        return self.root.joinpath(STATE_DIR, *parts)

    def inside(self, path: str, what: str) -> Path:
        return forms.inside(self.root, path, what)

    def command(self, *args: str) -> tuple[bool, str]:
        """Run one seektune command in the project folder: (succeeded, its output)."""
        done = subprocess.run([sys.executable, "-m", "seektune.cli", *args], cwd=self.root, capture_output=True,
                              text=True)
        return done.returncode == 0, (done.stdout + done.stderr).strip()

    def model_ref(self, name: str) -> str:
        """A run the UI started (its directory), a packaged model or hub id, or a model folder inside the project."""
        from seektune.models.registry import PACKAGED

        name = name.strip()
        run_dir = self.jobs.run_dir(name)
        if run_dir is not None:
            return str(run_dir)
        if name in PACKAGED or not forms.is_path(self.root, name):
            return name   # packaged, or a hub id the HF cache holds
        return str(self.inside(name, "model"))

    def trained_system_prompt(self, names: list[str]) -> str | None:
        """The system prompt the first of `names` (a UI run) was trained with, so chat, evaluation and the client
        snippet ask it the way it learned; None for anything else."""
        from seektune.config import load

        run_dir = self.jobs.run_dir(names[0]) if names else None
        if run_dir is None or not (run_dir / "config.yaml").is_file():
            return None
        return load(run_dir / "config.yaml").data.system_prompt


def split_names(text: str) -> list[str]:
    """Names typed in one box, comma- or line-separated."""
    return [n.strip() for n in text.replace(",", "\n").splitlines() if n.strip()]


def failure(title: str, output: str, limit: int = 3000) -> str:
    """A command's failure as the page shows it: a bold title and the end of its output."""
    return f"**{title}**\n\n```\n{output[-limit:]}\n```"
