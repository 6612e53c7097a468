"""Results written as they are produced: one JSON line per (model, task, variant, example) in
predictions.jsonl and one per (model, measurement) in measurements.jsonl, flushed after every write. A killed
evaluation resumes by skipping whatever is already there. Each row carries the fingerprint of what produced
it (model path, data hash, generation settings): a row from other settings is never reused."""

from __future__ import annotations

import json
from pathlib import Path

from seektune.atomic import append_jsonl


class ResultStore:
    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.predictions_path = directory / "predictions.jsonl"
        self.measurements_path = directory / "measurements.jsonl"
        self.predictions = self._read(self.predictions_path, ("model", "task", "variant", "index", "fp"))
        self.measurements = self._read(self.measurements_path, ("model", "kind", "fp"))

    @staticmethod
    def _read(path: Path, key: tuple[str, ...]) -> dict[tuple, dict]:
        out: dict[tuple, dict] = {}
        if not path.is_file():
            return out
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                out[tuple(row[k] for k in key)] = row
            except (json.JSONDecodeError, KeyError):
                continue  # a line cut by a kill mid-write: that example is simply redone
        return out

    def add_prediction(self, row: dict) -> None:
        append_jsonl(self.predictions_path, row)
        self.predictions[(row["model"], row["task"], row["variant"], row["index"], row["fp"])] = row

    def add_measurement(self, row: dict) -> None:
        append_jsonl(self.measurements_path, row)
        self.measurements[(row["model"], row["kind"], row["fp"])] = row

    def prediction(self, model: str, task: str, variant: str, index: int, fp: str) -> dict | None:
        return self.predictions.get((model, task, variant, index, fp))

    def measurement(self, model: str, kind: str, fp: str) -> dict | None:
        return self.measurements.get((model, kind, fp))
