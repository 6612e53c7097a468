"""Process-wide settings decided at run time: threads, seeds, autocast dtype."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def available_cores() -> int:
    """Cores this process may use (respects affinity masks and cgroup-limited containers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def set_threads(requested: int = 0, processes_per_host: int = 1) -> int:
    """Give torch one thread per available core, split across local processes (oversubscription is 5-10x slower)."""
    threads = requested or max(1, available_cores() // max(1, processes_per_host))
    torch.set_num_threads(threads)
    return threads


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def cpu_supports_fast_bf16() -> bool:
    """bf16 autocast on CPU is ~2.5x faster with AVX512-BF16/AMX, and slower without them."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(requested: str) -> str:
    """Map the config's precision to an accelerate mixed-precision mode: 'no', 'bf16' or 'fp16'."""
    if requested == "fp32":
        return "no"
    if requested in ("bf16", "fp16"):
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_supports_fast_bf16() else "no"


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
