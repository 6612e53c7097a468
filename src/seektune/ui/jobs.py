"""Training runs started from the web UI: each is a `seektune train` process of its own, in a new session, so
closing the browser or stopping the UI leaves it running. What the page shows is read back from disk (the job
record under <root>/.seektune-ui/jobs/ and the run directory itself), so a reloaded page, or a UI started again,
shows every run as it is."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from seektune.atomic import write_json
from seektune.errors import ConfigError

STATE_DIR = ".seektune-ui"
TAIL_BYTES = 16 << 10   # the end of metrics.jsonl read for a run's latest step (rows are ~300 bytes)
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")   # names a run's files: never a path


@dataclass
class Job:
    name: str
    run_dir: str
    config: str
    pid: int
    command: list[str]
    log: str
    started: float


@dataclass
class RunStatus:
    name: str
    state: str          # running | finished | stopped (resumable) | failed
    step: int
    loss: float | None
    run_dir: str


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a finished child of this UI stays in the table until reaped)."""
    try:
        os.waitpid(pid, os.WNOHANG)          # reap it if it is our finished child
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def running_as(pid: int, command: list[str]) -> bool:
    """The recorded process is alive and is still the command we started (after a reboot the pid may belong to
    another process, which must never get our SIGTERM)."""
    if not alive(pid):
        return False
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1] == [a.encode() for a in command]
    except OSError:
        return False


def _training_row(line: str) -> dict | None:
    """A metrics.jsonl line that records a training step (not an eval row, nor a line being written)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and "loss" in row and "step" in row else None


def metrics(run_dir: Path) -> list[dict]:
    """The training rows of metrics.jsonl (step, loss, lr...), skipping a line being written."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [row for line in path.read_text(encoding="utf-8").splitlines() if (row := _training_row(line))]


def last_row(run_dir: Path) -> dict | None:
    """The newest training row, read from the end of metrics.jsonl: the runs table asks every 2 s for every run,
    and a long run's file is large."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - TAIL_BYTES))
        tail = handle.read().decode("utf-8", errors="replace")
    row = next((r for line in reversed(tail.splitlines()) if (r := _training_row(line))), None)
    if row is None and size > TAIL_BYTES:   # eval rows only at the end: the whole file then
        return next(iter(reversed(metrics(run_dir))), None)
    return row


class Jobs:
    """The UI's training processes under `root` (the folder `seektune ui` was started in)."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.folder = self.root / STATE_DIR / "jobs"

    def _record(self, name: str) -> Job | None:
        if not RUN_NAME.fullmatch(name or ""):
            return None
        path = self.folder / f"{name}.json"
        return Job(**json.loads(path.read_text())) if path.is_file() else None

    def run_dir(self, name: str) -> Path | None:
        """The run directory of a run the UI started (None for any other name)."""
        job = self._record(name)
        return Path(job.run_dir) if job is not None else None

    def running(self, name: str) -> bool:
        job = self._record(name)
        return job is not None and running_as(job.pid, job.command)

    def start(self, name: str, config: Path, run_dir: Path, resume: bool = False) -> Job:
        """Start `seektune train CONFIG [--resume]` detached; its output goes to <root>/.seektune-ui/jobs/NAME.log."""
        if self.running(name):
            raise ConfigError(f"run {name} is already training; stop it first")
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "seektune.cli", "train", str(config), *(["--resume"] if resume else [])]
        log = self.folder / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       cwd=self.root, start_new_session=True)
        job = Job(name, str(run_dir), str(config), process.pid, command, str(log), time.time())
        write_json(self.folder / f"{name}.json", asdict(job))
        return job

    def stop(self, name: str) -> bool:
        """SIGTERM to the run's process group: training finishes its step, writes a checkpoint and exits, so
        Resume continues from there."""
        job = self._record(name)
        if job is None or not running_as(job.pid, job.command):
            return False
        os.killpg(job.pid, signal.SIGTERM)
        return True

    def log_tail(self, name: str, lines: int = 12) -> str:
        """The log's last lines as a terminal shows them: a progress bar redrawn with carriage returns is its
        latest state, not every redraw."""
        job = self._record(name)
        if job is None or not Path(job.log).is_file():
            return ""
        with open(job.log, encoding="utf-8", errors="replace", newline="") as handle:   # keep the \r
            text = handle.read()
        return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")[-lines - 1:]
                         if line.strip())

    def statuses(self) -> list[RunStatus]:
        """Every run the UI started, newest first, with its state, progress and last loss."""
        jobs = [j for p in sorted(self.folder.glob("*.json")) if (j := self._record(p.stem))] \
            if self.folder.is_dir() else []
        out = []
        for job in sorted(jobs, key=lambda j: -j.started):
            run_dir = Path(job.run_dir)
            row = last_row(run_dir)
            if running_as(job.pid, job.command):
                state = "running"
            elif (run_dir / "final").is_dir() and (run_dir / "result.json").is_file():
                state = "finished"
            elif (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()):
                state = "stopped (resumable)"
            else:
                state = "failed"
            out.append(RunStatus(job.name, state, row["step"] if row else 0, row["loss"] if row else None,
                                 job.run_dir))
        return out
