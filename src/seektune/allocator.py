"""The C memory allocator a `seektune train` (or `demo`) process runs on, decided at start.

glibc's malloc keeps most of what a training step frees (the activations) in fragmented arenas, so peak RSS
sits far above the live tensors. tcmalloc reuses it: on the 2-core CPU, issue 15's LoRA job peaked at 3886 MB
instead of 5051 MB (0.76x) at the same tokens/s (bench/README.md). A library can only replace malloc before the
process starts, so the `seektune` command re-executes itself once with tcmalloc preloaded when Debian's
libtcmalloc-minimal4 (or gperftools' libtcmalloc) is installed. It does not when LD_PRELOAD is already set (the
user chose, or this is the re-executed process), on machines with a GPU driver (measured on CPU only), or with
SEEKTUNE_ALLOCATOR=system. Torch-free on purpose: it runs before anything heavy is imported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping

from seektune.errors import ConfigError

ENV = "SEEKTUNE_ALLOCATOR"   # auto (default): tcmalloc when installed, on CPU-only machines | system: glibc's
TCMALLOC_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")
GPU_DRIVERS = ("/proc/driver/nvidia/version", "/dev/kfd")   # NVIDIA, AMD ROCm


def find_tcmalloc(dirs: tuple[str, ...] = LIBRARY_DIRS) -> Path | None:
    return next((Path(d) / name for name in TCMALLOC_NAMES for d in dirs if (Path(d) / name).is_file()), None)


def has_gpu_driver() -> bool:
    return any(Path(p).exists() for p in GPU_DRIVERS)


def preload_for(env: Mapping[str, str], tcmalloc: Path | None, gpu: bool) -> Path | None:
    """The library to preload into a fresh training process, or None to keep the allocator it has."""
    choice = env.get(ENV, "auto")
    if choice not in ("auto", "system"):
        raise ConfigError(f"{ENV}={choice!r}: use auto (tcmalloc when it is installed, on CPU-only machines) "
                          f"or system (glibc's malloc)")
    if choice == "system" or env.get("LD_PRELOAD") or gpu:
        return None
    return tcmalloc


def reexec_with_tcmalloc() -> None:
    """Replace this process (same PID, same arguments) by one with tcmalloc preloaded, when `preload_for` says
    so; otherwise return. Call it before importing torch: nothing done so far is lost."""
    library = preload_for(os.environ, find_tcmalloc(), has_gpu_driver())
    if library is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, {**os.environ, "LD_PRELOAD": str(library)})


def active(maps: Path = Path("/proc/self/maps")) -> str:
    """Which allocator this process runs on (recorded in result.json): tcmalloc, jemalloc or glibc."""
    try:
        text = maps.read_text()
    except OSError:
        return "unknown"
    return next((name for name in ("tcmalloc", "jemalloc") if f"lib{name}" in text), "glibc")


def describe(name: str) -> str:
    """`name` (from `active`) for the run's summary line, with what to install when tcmalloc would help and is
    missing."""
    if name == "glibc" and find_tcmalloc() is None and not has_gpu_driver():
        return "glibc (apt install libtcmalloc-minimal4: ~0.76x peak RSS on CPU)"
    return name
