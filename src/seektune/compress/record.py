"""compression.json: what was done to a model (method, settings, calibration data and its sha256, sizes before
and after), written beside every compressed or exported model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from seektune.atomic import write_json

RECORD_FILE = "compression.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


def weights_bytes(path: str | Path) -> int:
    """Bytes of the weight files of a model directory (or one GGUF file): what a user downloads or ships."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file() and f.name.endswith(_WEIGHT_SUFFIXES))


@dataclass
class Calibration:
    source: str              # the file, or the run whose training data was used
    sha256: str | None       # of the file(s) the samples came from
    samples: int
    tokens: int


@dataclass
class CompressionRecord:
    method: str
    settings: dict
    source: str              # what was compressed (run, adapter or model directory)
    base_model: str | None   # the base an adapter was merged into first
    bytes_before: int
    bytes_after: int = 0
    calibration: Calibration | None = None
    measured: dict = field(default_factory=dict)   # what the method measured itself (sparsity, kept channels...)

    @property
    def ratio(self) -> float:
        return self.bytes_before / self.bytes_after if self.bytes_after else float("nan")

    def as_dict(self) -> dict:
        out = asdict(self)
        out["size_ratio"] = round(self.ratio, 3)
        return out

    def write(self, directory: Path) -> None:
        write_json(directory / RECORD_FILE, self.as_dict())

    def write_beside(self, file: Path) -> None:
        """The record of a one-file artifact (GGUF): <name>.compression.json next to it."""
        write_json(file.with_suffix(".compression.json"), self.as_dict())

    def summary(self) -> str:
        mb = 1 << 20
        return (f"{self.method}: {self.bytes_before / mb:.1f} MB -> {self.bytes_after / mb:.1f} MB of weights "
                f"({self.ratio:.2f}x smaller)")


def read_record(path: str | Path) -> dict | None:
    path = Path(path)
    file = path / RECORD_FILE if path.is_dir() else path.with_suffix(".compression.json")
    return json.loads(file.read_text()) if file.is_file() else None
