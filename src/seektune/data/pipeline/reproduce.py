"""Re-run the steps a manifest records and check that every output has the recorded sha256."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from seektune.atomic import sha256
from seektune.errors import DataError


@contextlib.contextmanager
def _inside(directory: str):
    before = os.getcwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(before)


def reproduce(manifest: Path, run) -> list[tuple[str, str]]:
    """`run(argv) -> exit code` is the CLI. Returns (output path, "same" | "differs" | "skipped ...")."""
    steps = json.loads(manifest.read_text(encoding="utf-8"))["steps"]
    results: list[tuple[str, str]] = []
    for step in steps:
        outputs = step.get("outputs", [])
        if not step.get("argv"):
            results += [(o["path"], "skipped: no command recorded") for o in outputs]
            continue
        if not step.get("deterministic", True):
            results += [(o["path"], "skipped: calls an external endpoint (not deterministic)") for o in outputs]
            continue
        with _inside(step.get("cwd") or os.getcwd()):
            print(f"re-running: seektune {' '.join(step['argv'])}", flush=True)
            code = run(step["argv"])
            if code:
                raise DataError(f"step {step['step']} failed (exit {code}) while reproducing {manifest}")
            for o in outputs:
                path = Path(o["path"])
                same = path.is_file() and sha256(path) == o["sha256"]
                results.append((o["path"], "same" if same else "differs"))
    return results
