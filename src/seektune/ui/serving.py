"""The Compress & serve tab's logic: a run becomes a merged, quantized or GGUF model through `seektune merge`,
`quantize` or `export` (run in the project folder, output under <root>/.seektune-ui/compressed/), and a model is
served by `seektune serve` started detached, like the UI's training runs (jobs.py): a record and a log per port
under <root>/.seektune-ui/servers/, so a reloaded page, or a UI started again, finds the server and can stop it.
Nothing here loads a model: every step is the CLI's."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from seektune.atomic import write_json
from seektune.errors import ConfigError, SeektuneError
from seektune.ui.jobs import STATE_DIR, alive, running_as
from seektune.ui.project import Project, failure, slug

# what each action takes; quantize lists the methods that run on a CPU without calibration data (gptq / awq need
# the gptq extra and calibration samples: `seektune quantize` on the command line)
TYPES: dict[str, list[str]] = {"merge": [], "quantize": ["int8", "int4", "nf4"],
                               "export-gguf": ["f16", "q8_0", "q4_0", "bf16", "f32"]}
HOST = "127.0.0.1"             # the UI serves on loopback only; a network-facing server is `seektune serve --host`
LISTENING = re.compile(r"serving (.+?) on (http://127\.0\.0\.1:\d+)/v1 \(.*keys (required|off)\)")
PROGRESS = re.compile(r"\d+%\|")   # tqdm bars in a command's output: noise on the page
KEY_ENV = "SEEKTUNE_API_KEY"   # where the snippet reads a key from when the server requires one


def _stem(name: str) -> str:
    """The output name of a model: a run's name, a folder's name (its run's for .../final), a GGUF file's stem."""
    path = Path(name.strip().rstrip("/"))
    stem = path.parent.name if path.name == "final" else path.stem if path.suffix == ".gguf" else path.name
    return slug(stem, "model")


def compress_args(project: Project, name: str, action: str, type_: str = "") -> tuple[list[str], Path]:
    """The seektune arguments of one compress action and the output it writes. The model goes through
    `project.model_ref`, so a path outside the project is refused before anything runs."""
    if action not in TYPES:
        raise ConfigError(f"action {action!r}: one of {', '.join(TYPES)}")
    if TYPES[action] and type_ not in TYPES[action]:
        raise ConfigError(f"{action}: type {type_!r} is not one of {', '.join(TYPES[action])}")
    if not name.strip():
        raise ConfigError("model: name a run, a packaged model or a model folder in the project")
    ref, stem = project.relative(project.model_ref(name)), _stem(name)
    folder = project.state("compressed")
    if action == "merge":
        out = folder / f"{stem}-merged"
        return ["merge", ref, "--out", project.relative(out)], out
    if action == "quantize":
        out = folder / f"{stem}-{type_}"
        return ["quantize", ref, "--method", type_, "--out", project.relative(out)], out
    out = folder / f"{stem}-{type_}.gguf"
    return ["export", ref, "--format", "gguf", "--type", type_, "--out", project.relative(out)], out


def command_line(args: list[str]) -> str:
    return "seektune " + shlex.join(args)


def compress(project: Project, name: str, action: str, type_: str = "") -> tuple[str, Path | None]:
    """Run the action as its seektune command: (the page's summary with the command line, the output or None)."""
    args, out = compress_args(project, name, action, type_)
    ok, output = project.command(*args)
    line = f"`{command_line(args)}`"
    if not ok:
        return f"{failure(f'{action} failed:', output)}\n\nCommand: {line}", None
    shown = "\n".join(r for r in output.splitlines() if r.strip() and not PROGRESS.search(r))
    return (f"**Done** ({line})\n\n```\n{shown[-1500:]}\n```\n\nOutput: `{project.relative(out)}`, served "
            f"below under the name `{_stem(str(out))}`"), out


@dataclass
class Server:
    port: int
    models: list[str]            # as typed in the page
    command: list[str]
    pid: int
    log: str
    started: float


@dataclass
class ServerStatus:
    port: int
    state: str                   # starting | running | stopped | failed (exited before it listened)
    url: str | None              # http://127.0.0.1:PORT/v1 once listening
    served: list[str]            # the model names requests use (what /v1/models lists)
    keys_required: bool
    models: list[str]


class Servers:
    """The UI's `seektune serve` processes under `root`, one per port, each in its own session (it outlives the
    page and the UI), their state read back from the record, the log and the process table."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.folder = self.root / STATE_DIR / "servers"

    def _record(self, port: int) -> Server | None:
        path = self.folder / f"{port}.json"
        return Server(**json.loads(path.read_text())) if path.is_file() else None

    def _running(self, server: Server | None) -> bool:
        return server is not None and running_as(server.pid, server.command)

    def log_tail(self, port: int, lines: int = 20) -> str:
        server = self._record(port)
        if server is None or not Path(server.log).is_file():
            return ""
        return "\n".join(Path(server.log).read_text(errors="replace").splitlines()[-lines:])

    def status(self, port: int) -> ServerStatus | None:
        server = self._record(port)
        if server is None:
            return None
        found = LISTENING.search(Path(server.log).read_text(errors="replace")) if Path(server.log).is_file() else None
        if self._running(server):
            state = "running" if found else "starting"
        else:
            state = "stopped" if found else "failed"
        return ServerStatus(port, state, f"{found.group(2)}/v1" if found else None,
                            found.group(1).split(", ") if found else [], bool(found) and found.group(3) == "required",
                            server.models)

    def statuses(self) -> list[ServerStatus]:
        """Every server the UI started, newest first."""
        records = [self._record(int(p.stem)) for p in self.folder.glob("*.json") if p.stem.isdigit()] \
            if self.folder.is_dir() else []
        return [s for r in sorted(records, key=lambda r: -r.started) if (s := self.status(r.port))]

    @staticmethod
    def args(project: Project, models: list[str], port: int, api_key_file: str | None = None) -> list[str]:
        """`seektune serve` arguments for the page's models (names resolved inside the project) on loopback."""
        if not models:
            raise ConfigError("models: name at least one run, packaged model or model folder to serve")
        if not 1 <= port <= 65535:
            raise ConfigError(f"port {port}: between 1 and 65535")
        keys = ["--api-key-file", project.relative(project.inside(api_key_file, "API key file"))] \
            if api_key_file else []
        return ["serve", *(project.relative(project.model_ref(m)) for m in models), "--host", HOST,
                "--port", str(port), *keys]

    def start(self, project: Project, models: list[str], port: int, api_key_file: str | None = None,
              timeout: float = 120) -> ServerStatus:
        """Start the server detached and wait until it listens; a server that exits or does not listen within
        `timeout` seconds is an error carrying its log's end (and the latter is stopped)."""
        if self._running(self._record(port)):
            raise ConfigError(f"a server already runs on port {port}; stop it first or pick another port")
        command = [sys.executable, "-m", "seektune.cli", *self.args(project, models, port, api_key_file)]
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.folder / f"{port}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       cwd=self.root, start_new_session=True, env={**os.environ,
                                                                                   "PYTHONUNBUFFERED": "1"})
        write_json(self.folder / f"{port}.json",
                   asdict(Server(port, [m.strip() for m in models], command, process.pid, str(log), time.time())))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:   # the Popen itself tells the exit code (status() would reap it)
            code = process.poll()
            if LISTENING.search(log.read_text(errors="replace")):
                return self.status(port)
            if code is not None:
                raise SeektuneError(f"the server exited with {code} before it listened; its log ({log}):\n"
                                    f"{self.log_tail(port)}")
            time.sleep(0.2)
        self.stop(port)
        raise SeektuneError(f"the server did not listen within {timeout:.0f}s (stopped); its log ({log}):\n"
                            f"{self.log_tail(port)}")

    def stop(self, port: int, timeout: float = 40) -> bool:
        """SIGTERM to the server's process group (in-flight requests get --shutdown-timeout to finish), then wait
        for it to end, SIGKILL after `timeout`; False when no server of ours runs on the port."""
        server = self._record(port)
        if not self._running(server):
            return False
        os.killpg(server.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(server.pid):
            if time.monotonic() > deadline:
                os.killpg(server.pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.1)
        return True


@dataclass
class Snippet:
    curl: str
    python: str

    def markdown(self) -> str:
        return f"curl:\n```bash\n{self.curl}\n```\nPython (`pip install openai`):\n```python\n{self.python}\n```"


def client_snippet(url: str, model: str, keys_required: bool = False, question: str = "Hello!",
                   max_tokens: int = 64, system: str | None = None) -> Snippet:
    """A curl command and an `openai` client call of /v1/chat/completions for `model` (a name /v1/models lists),
    with `system` first when the run was trained with one; with keys required both read the key from
    $SEEKTUNE_API_KEY, so no key is ever shown on the page."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    body = json.dumps({"model": model, "messages": messages, "max_tokens": max_tokens})
    header = f' -H "Authorization: Bearer ${KEY_ENV}"' if keys_required else ""
    curl = f"curl -s {url}/chat/completions -H 'Content-Type: application/json'{header} -d {shlex.quote(body)}"
    key = f"os.environ[{KEY_ENV!r}]" if keys_required else repr("no-key-needed")
    python = (("import os\n\n" if keys_required else "") + "from openai import OpenAI\n\n"
              f"client = OpenAI(base_url={url!r}, api_key={key})\n"
              f"reply = client.chat.completions.create(\n    model={model!r}, max_tokens={max_tokens},\n"
              "    messages=[\n" + "".join(f"        {m!r},\n" for m in messages) + "    ])\n"
              "print(reply.choices[0].message.content)")
    return Snippet(curl, python)
