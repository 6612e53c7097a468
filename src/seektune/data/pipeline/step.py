"""What every `seektune data` command shares: read inputs with one error policy, count, write the output
atomically, then the manifest, then a short human summary."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tqdm.auto import tqdm

from seektune.data.pipeline import manifest
from seektune.data.pipeline.fields import validate
from seektune.data.jsonio import Item, Tally, read_records

log = logging.getLogger("seektune.data")


@dataclass
class Step:
    name: str
    inputs: list[Path]
    params: dict
    argv: list[str] | None = None
    on_error: str = "raise"
    encoding: str = "utf-8"
    seed: int | None = None
    deterministic: bool = True
    tally: Tally = field(default_factory=Tally)
    extra: dict = field(default_factory=dict)

    def records(self, paths: list[Path] | None = None, tally: Tally | None = None, check: bool = True,
                progress: bool = True) -> Iterator[Item]:
        items = read_records(paths if paths is not None else self.inputs, tally or self.tally, self.on_error,
                             self.encoding, validate if check else None)
        return tqdm(items, desc=self.name, unit=" rec", disable=not progress, mininterval=1.0)

    def finish(self, outputs: list[Path], extra_inputs: list[Path] = ()) -> Path:
        path = manifest.write(self.name, [*self.inputs, *extra_inputs], outputs, self.params, self.tally, self.argv,
                              self.seed, self.deterministic, self.extra)
        t = self.tally
        print(f"{self.name}: {t.records_in} records in, {t.records_out} out -> {', '.join(map(str, outputs))}")
        for reason, n in sorted(t.removed.items(), key=lambda kv: -kv[1]):
            print(f"  removed {n} x {reason}" + (f"\n      first at {t.first[reason]}" if reason in t.first else ""))
        print(f"  manifest: {path}")
        return path


def load_tokenizer(name: str):
    """`deepseek` = the packaged DeepSeek tokenizer; anything else a model name/path seektune can load."""
    if name == "deepseek":
        from seektune.models.registry import deepseek_tokenizer

        return deepseek_tokenizer()
    from seektune.config import ModelConfig
    from seektune.models.loading import load_tokenizer as load

    return load(ModelConfig(name_or_path=name))
