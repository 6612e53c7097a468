"""The manifest beside every output: what went in (with sha256), which step with which parameters, what came
out and why records were removed. Steps of the inputs' own manifests are carried over, so one manifest holds
the whole lineage and `seektune data reproduce` can re-run it and check the hashes.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from seektune import __version__
from seektune.atomic import sha256, write_json
from seektune.data.jsonio import Tally

SUFFIX = ".manifest.json"


def manifest_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + SUFFIX)


def _lineage(inputs: list[Path]) -> list[dict]:
    """Earlier steps recorded in the inputs' manifests, each once, oldest first."""
    steps, seen = [], set()
    for path in inputs:
        earlier = manifest_path(path)
        if not earlier.is_file():
            continue
        for step in json.loads(earlier.read_text(encoding="utf-8")).get("steps", []):
            key = json.dumps(step.get("outputs"), sort_keys=True)
            if key not in seen:
                seen.add(key)
                steps.append(step)
    return steps


def write(step: str, inputs: list[str | Path], outputs: list[str | Path], params: dict, tally: Tally | None,
          argv: list[str] | None, seed: int | None = None, deterministic: bool = True,
          extra: dict | None = None) -> Path:
    """Write `<first output>.manifest.json` (and the same beside every other output); return its path."""
    inputs = [Path(p) for p in inputs]
    outputs = [Path(p) for p in outputs]
    entry = {
        "step": step,
        "params": params,
        "seed": seed,
        "deterministic": deterministic,
        "inputs": [{"path": str(p), "sha256": sha256(p)} for p in inputs if p.is_file()],
        "outputs": [{"path": str(p), "sha256": sha256(p)} for p in outputs if p.is_file()],
        "counts": tally.as_dict() if tally is not None else None,
        "argv": argv,
        "cwd": os.getcwd(),
        "tool": f"seektune {__version__}",
        "python": platform.python_version(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra or {}),
    }
    document = {"steps": [*_lineage(inputs), entry]}
    for out in outputs:
        write_json(manifest_path(out), document)
    return manifest_path(outputs[0])
