"""Start `seektune serve` as a real subprocess on 127.0.0.1 (a free port it picks itself) and stop it; the log
goes to a file so a chatty server never blocks on a full pipe. Used by the recipe's `ask` stage and the tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from seektune.errors import SeektuneError


@dataclass
class ServerProcess:
    process: subprocess.Popen
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout)


def start_server(args: list[str], log: Path, timeout: float = 90, env: dict[str, str] | None = None
                 ) -> ServerProcess:
    """`seektune serve ARGS --port 0`, once it says where it listens. Without API keys unless `env` sets them."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SEEKTUNE_API_KEYS": "", **(env or {})}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        process = subprocess.Popen([sys.executable, "-m", "seektune.cli", "serve", *args, "--port", "0"],
                                   stdout=handle, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"on (http://127\.0\.0\.1:\d+)/v1", log.read_text(errors="replace"))
        if found:
            return ServerProcess(process, found.group(1), log)
        if process.poll() is not None:
            raise SeektuneError(f"the server exited with {process.returncode}; its log ({log}):\n"
                                f"{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.2)
    process.kill()
    raise SeektuneError(f"the server did not start in {timeout:.0f}s; its log ({log}):\n"
                        f"{log.read_text(errors='replace')[-4000:]}")
