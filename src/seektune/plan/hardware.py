"""The memory a plan is checked against: `8x80GB`, `1x24GB`, `2x24GiB` (GPUs) or `cpu` (this machine's RAM)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from seektune.errors import ConfigError

_UNITS = {"gb": 10**9, "gib": 2**30, "mb": 10**6, "mib": 2**20, "tb": 10**12}
_SPEC = re.compile(r"^\s*(\d+)\s*x\s*(\d+(?:\.\d+)?)\s*(gb|gib|mb|mib|tb)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Hardware:
    devices: int
    bytes_each: int
    kind: str   # "gpu" or "cpu"

    def describe(self) -> str:
        each = f"{self.bytes_each / 2**30:.1f} GiB"
        return f"{self.devices} x {each} GPU" if self.kind == "gpu" else f"CPU with {each} RAM"


def _cpu_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise ConfigError("cannot read the available memory from /proc/meminfo; pass --gpus NxSIZE instead")


def parse(spec: str) -> Hardware:
    """`cpu` is one device with the RAM available now; `NxSIZE` is N GPUs of SIZE each."""
    if spec.strip().lower() == "cpu":
        return Hardware(1, _cpu_bytes(), "cpu")
    match = _SPEC.match(spec)
    if not match or int(match.group(1)) < 1:
        raise ConfigError(f"--gpus {spec!r}: expected NxSIZE such as 8x80GB, 1x24GB, 4x40GiB, or cpu")
    return Hardware(int(match.group(1)), int(float(match.group(2)) * _UNITS[match.group(3).lower()]), "gpu")
