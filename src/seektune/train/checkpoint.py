"""Atomic checkpoints that resume bit-for-bit.

A checkpoint is written into a temporary directory, every file fsynced, a COMPLETE marker written last, and the
directory renamed into place; a crash at any point leaves earlier checkpoints untouched and no half checkpoint
that looks complete. It holds the trainable parameters (safetensors), optimizer, scheduler, loop position and
every process's RNG state. Frozen weights are not stored: they are reloaded from the base model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from seektune.errors import CheckpointError

MARKER = "COMPLETE"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def fsync_tree(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fsync_dir(path)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, final: Path) -> None:
    """fsync a finished temporary directory and rename it into place atomically."""
    fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(final.parent)


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def complete_checkpoints(root: Path) -> list[Path]:
    found = []
    if root.is_dir():
        for d in root.iterdir():
            m = _STEP_DIR.match(d.name)
            if m and (d / MARKER).is_file():
                found.append((int(m.group(1)), d))
    return [d for _, d in sorted(found)]


def latest(root: Path) -> Path | None:
    found = complete_checkpoints(root)
    return found[-1] if found else None


def tmp_dir(root: Path, step: int) -> Path:
    return root / f".tmp-step-{step}"


def write_process_state(tmp: Path, rank: int, rng: dict) -> None:
    """Each process writes its own RNG state (dropout masks differ per process under DDP)."""
    torch.save(rng, tmp / f"rng-rank{rank}.pt")


def write_main_state(tmp: Path, model: nn.Module, optimizer, scheduler, loop_state: dict,
                     method_state: dict | None = None) -> None:
    save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "method": method_state or {}}, tmp / "optim.pt")
    (tmp / "loop_state.json").write_text(json.dumps(loop_state, indent=1))


def finalise(root: Path, step: int, keep_last: int) -> Path:
    """Mark the temporary checkpoint complete, move it into place, and prune old ones."""
    tmp, final = tmp_dir(root, step), root / f"step-{step}"
    (tmp / MARKER).write_text(json.dumps({"step": step}))
    publish(tmp, final)
    for old in complete_checkpoints(root)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(path: Path, model: nn.Module, optimizer, scheduler, rank: int) -> tuple[dict, dict, dict]:
    """Restore weights, optimizer and scheduler in place; return (loop_state, this process's rng state,
    the method's own state, e.g. AdaLoRA's sensitivity scores)."""
    if not (path / MARKER).is_file():
        raise CheckpointError(f"{path} is incomplete (no {MARKER} marker)")
    weights = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in weights]
    if missing or any(n not in params for n in weights):
        raise CheckpointError(f"{path} does not match this model/method (e.g. {(missing or list(weights))[:3]})")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    optim = torch.load(path / "optim.pt", weights_only=False)
    optimizer.load_state_dict(optim["optimizer"])
    scheduler.load_state_dict(optim["scheduler"])
    rng_file = path / f"rng-rank{rank}.pt"
    if not rng_file.is_file():
        raise CheckpointError(f"{path} has no RNG state for process {rank}; resume with the same number of processes")
    loop_state = json.loads((path / "loop_state.json").read_text())
    return loop_state, torch.load(rng_file, weights_only=False), optim.get("method", {})
