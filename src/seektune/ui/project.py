"""The project folder the page serves: where the UI keeps its state (<root>/.seektune-ui), how it runs a seektune
command (as its own process, in the project folder: the page's work goes through the CLI, never around it), and
how a name typed in the page becomes a model reference."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from seektune.errors import SeektuneError
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

    def relative(self, path: str | Path) -> str:
        """A path as a command run in the project folder takes it (the shown command runs as is from there):
        relative when inside the project, else as given (a packaged name or hub id passes unchanged)."""
        given = Path(path)
        return given.relative_to(self.root).as_posix() if given.is_absolute() and given.is_relative_to(self.root) \
            else str(path)

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
        """The system prompt the first of `names` (UI runs) that had one was trained with, so chat, evaluation and
        the client snippet ask a run the way it learned; None when none had one (or its config does not load)."""
        from seektune.config import load

        for name in names:
            run_dir = self.jobs.run_dir(name)
            if run_dir is None or not (run_dir / "config.yaml").is_file():
                continue
            try:
                prompt = load(run_dir / "config.yaml").data.system_prompt
            except SeektuneError:
                continue
            if prompt:
                return prompt
        return None

    def system_prompt_for(self, names: str, current: str) -> str | None:
        """What a system-prompt box beside a box of model names should be filled with: the runs' trained prompt,
        unless the user already wrote one (None: leave the box as it is)."""
        return None if current.strip() else self.trained_system_prompt(split_names(names))


def split_names(text: str) -> list[str]:
    """Names typed in one box, comma- or line-separated."""
    return [n.strip() for n in text.replace(",", "\n").splitlines() if n.strip()]


def slug(text: str, fallback: str) -> str:
    """`text` as a file name: runs of anything but word characters, '.' and '-' become '-'."""
    return re.sub(r"[^\w.-]+", "-", text).strip("-.")[:120] or fallback


def report_text(path: Path) -> str:
    """A report's markdown without its image lines (the page shows the images itself)."""
    return "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("!["))


def failure(title: str, output: str, limit: int | None = 3000) -> str:
    """A failure as the page shows it: a bold title and the end of a command's output (the whole of an error's
    message with `limit=None`)."""
    return f"**{title}**\n\n```\n{output[-limit:] if limit else output}\n```"
