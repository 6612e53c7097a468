"""Files that are either whole or absent: every layer writes through here, so a crash at any moment leaves the
previous good file (or directory) in place and never a half-written one.

- `publish(tmp, final)`: fsync a finished temporary directory and rename it into place.
- `write_json` / `write_text`: a temporary sibling, fsynced, renamed over the target.
- `JsonlWriter`: streams records into a temporary file, renamed on success, removed on error.
- `append_jsonl`: one line appended and fsynced (logs that grow: metrics, evaluation results).
- `sha256`: the checksum recorded in manifests and checkpoint markers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fsync_dir(path)


def publish(tmp: Path, final: Path) -> None:
    """fsync a finished temporary directory and rename it into place (replacing an older `final`)."""
    fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(final.parent)


def staging_path(final: Path) -> Path:
    """The temporary sibling `final` is built in before `publish` (hidden, so listings skip it)."""
    return final.with_name(f".{final.name}-tmp")


def staging_dir(final: Path) -> Path:
    """staging_path(final), created empty."""
    tmp = staging_path(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def write_text(path: Path, text: str) -> None:
    """Write through a temporary file renamed into place, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json(path: Path, value) -> None:
    write_text(path, json.dumps(value, ensure_ascii=False, indent=1))


def append_jsonl(path: Path, row: dict, sync: bool = True) -> None:
    """Append one JSON line; with `sync`, it is on disk before this returns (a kill loses nothing written)."""
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        if sync:
            fh.flush()
            os.fsync(fh.fileno())


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class JsonlWriter:
    """Writes records to `path` through a temporary file renamed into place on success, so a crash never
    leaves a half-written output over an earlier good one. `tally.records_out` (when given) counts writes."""

    def __init__(self, path: str | Path, tally=None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._fh = self._tmp.open("w", encoding="utf-8")
        self.tally = tally
        self.count = 0

    def write(self, record: dict) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1
        if self.tally is not None:
            self.tally.records_out += 1

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._fh.close()
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)
