"""Atomic checkpoints that resume bit-for-bit, and that are checked before they are trusted.

A checkpoint is written into a temporary directory, every file fsynced, a COMPLETE marker written last (with
the size and sha256 of every file), and the directory renamed into place; a crash at any point leaves earlier
checkpoints untouched and no half checkpoint that looks complete. A file damaged later (a full disk, a copy cut
short) fails verification, and resume falls back to the previous complete checkpoint with a warning naming the
file. It holds the trainable parameters (safetensors), optimizer, scheduler, loop position, the loop hooks'
state and every process's RNG state. Frozen weights are not stored: they are reloaded from the base model.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from seektune.atomic import publish, sha256, staging_path
from seektune.errors import CheckpointError

MARKER = "COMPLETE"
OWN_WEIGHTS = "objective.safetensors"
_STEP_DIR = re.compile(r"^step-(\d+)$")
log = logging.getLogger("seektune.train")


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


def damage(path: Path) -> str | None:
    """Why a complete checkpoint cannot be trusted (a file missing, cut short or changed), or None."""
    try:
        files = json.loads((path / MARKER).read_text()).get("files")
    except (OSError, json.JSONDecodeError):
        return f"{path / MARKER} is unreadable"
    for name, expected in (files or {}).items():  # markers written before file records carry none
        file = path / name
        if not file.is_file():
            return f"{file} is missing"
        if file.stat().st_size != expected["size"]:
            return f"{file} has {file.stat().st_size} bytes, expected {expected['size']}"
        if sha256(file) != expected["sha256"]:
            return f"{file} does not match its recorded sha256"
    return None


def latest(root: Path, warn: bool = True) -> Path | None:
    """The newest complete checkpoint that verifies; damaged newer ones are skipped with a warning."""
    for path in reversed(complete_checkpoints(root)):
        problem = damage(path)
        if problem is None:
            return path
        if warn:
            log.warning("checkpoint %s is damaged (%s); falling back to the previous complete checkpoint",
                        path.name, problem)
    return None


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step}"


def tmp_dir(root: Path, step: int) -> Path:
    """Where a checkpoint is built before it is renamed to step_dir."""
    return staging_path(step_dir(root, step))


def write_process_state(tmp: Path, rank: int, rng: dict) -> None:
    """Each process writes its own RNG state (dropout masks differ per process under DDP)."""
    torch.save(rng, tmp / f"rng-rank{rank}.pt")


def write_main_state(tmp: Path, model: nn.Module, optimizer, scheduler, loop_state: dict,
                     hook_state: dict | None = None, weights: bool = True,
                     own: dict[str, nn.Parameter] | None = None) -> None:
    """`weights=False` when a sharded engine's checkpoint already holds the weights and optimizer state; `own`:
    the objective's weights outside the model (CLIP's projections), in objective.safetensors."""
    if weights:
        save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    if own:
        save_file({n: p.detach().contiguous().cpu() for n, p in own.items()}, str(tmp / OWN_WEIGHTS))
    torch.save({"optimizer": optimizer.state_dict() if weights else None, "scheduler": scheduler.state_dict(),
                "method": hook_state or {}}, tmp / "optim.pt")
    (tmp / "loop_state.json").write_text(json.dumps(loop_state, indent=1))


def finalise(root: Path, step: int, keep_last: int) -> Path:
    """Record every file's size and checksum in the marker, move the checkpoint into place, prune old ones."""
    tmp, final = tmp_dir(root, step), step_dir(root, step)
    files = {str(p.relative_to(tmp)): {"size": p.stat().st_size, "sha256": sha256(p)}
             for p in sorted(tmp.rglob("*")) if p.is_file()}
    (tmp / MARKER).write_text(json.dumps({"step": step, "files": files}, indent=1))
    publish(tmp, final)
    for old in complete_checkpoints(root)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(path: Path, model: nn.Module, optimizer, scheduler, rank: int, weights: bool = True,
         own: dict[str, nn.Parameter] | None = None) -> tuple[dict, dict, dict]:
    """Restore weights, optimizer and scheduler in place (`weights=False`: a sharded engine restored the
    first two); return (loop_state, this process's rng state, the loop hooks' state, e.g. AdaLoRA's
    sensitivity scores)."""
    if not (path / MARKER).is_file():
        raise CheckpointError(f"{path} is incomplete (no {MARKER} marker)")
    optim = torch.load(path / "optim.pt", weights_only=False)
    if weights:
        if optim["optimizer"] is None:
            raise CheckpointError(f"{path} was written by a sharded run (train.sharding=fsdp2); resume it with "
                                  "the same sharding")
        _load_weights(path, model)
        optimizer.load_state_dict(optim["optimizer"])
    elif optim["optimizer"] is not None:
        raise CheckpointError(f"{path} was written by an unsharded run; resume it with train.sharding=none")
    if own:
        _load_own(path, own)
    scheduler.load_state_dict(optim["scheduler"])
    rng_file = path / f"rng-rank{rank}.pt"
    if not rng_file.is_file():
        raise CheckpointError(f"{path} has no RNG state for process {rank}; resume with the same number of processes")
    loop_state = json.loads((path / "loop_state.json").read_text())
    return loop_state, torch.load(rng_file, weights_only=False), optim.get("method", {})


def _load_weights(path: Path, model: nn.Module) -> None:
    weights = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in weights]
    if missing or any(n not in params for n in weights):
        raise CheckpointError(f"{path} does not match this model/method (e.g. {(missing or list(weights))[:3]})")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)


def _load_own(path: Path, own: dict[str, nn.Parameter]) -> None:
    file = path / OWN_WEIGHTS
    if not file.is_file():
        raise CheckpointError(f"{path} has no {OWN_WEIGHTS} for this objective's own weights; it was written by "
                              "a run with another objective")
    weights = load_file(str(file))
    if set(weights) != set(own):
        raise CheckpointError(f"{file} holds {sorted(weights)[:3]}, this objective has {sorted(own)[:3]}")
    with torch.no_grad():
        for name, tensor in weights.items():
            own[name].copy_(tensor)
