"""Calibration samples for GPTQ, AWQ and Wanda: the run's own training data (or a given file), rendered with
the model's chat template exactly as in training, so the activations the method measures are the ones the
model sees when it answers."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from seektune.atomic import sha256
from seektune.compress.options import CalibrationOptions
from seektune.compress.record import Calibration
from seektune.compress.source import Source
from seektune.config import DataConfig, DataFile
from seektune.data.dataset import build as build_data
from seektune.errors import ConfigError

log = logging.getLogger("seektune.compress")


@dataclass
class CalibrationSet:
    samples: list[list[int]]   # token ids, one rendered conversation each
    record: Calibration


def calibration_set(source: Source, opts: CalibrationOptions) -> CalibrationSet:
    """`opts.calibration_samples` samples chosen by `opts.seed`, each cut at `opts.calibration_length` tokens."""
    run_data = source.run_cfg.data if source.run_cfg is not None else None
    if opts.calibration:
        files = [DataFile(path=opts.calibration)]
        where = opts.calibration
    elif run_data is not None:
        files = run_data.train
        where = f"{source.artifact.path.parent} (its training data)"
    else:
        raise ConfigError(f"{source.artifact.path} is not a seektune run, so there is no training data to calibrate "
                          "on: pass --calibration data.jsonl (samples of the domain the model will answer)")
    base = run_data or DataConfig()
    data = base.model_copy(update={"train": files, "eval": [], "eval_fraction": 0.0, "packing": False,
                                   "max_length": opts.calibration_length, "overlength": "truncate",
                                   "domain_reweighting": False})
    rows = build_data(data, source.tokenizer, opts.seed).train
    chosen = random.Random(opts.seed).sample(rows, min(opts.calibration_samples, len(rows)))
    samples = [row.input_ids for row in chosen]
    if len(samples) < opts.calibration_samples:
        log.info(f"calibration: {len(samples)} samples available (asked for {opts.calibration_samples})")
    digest = ",".join(sha256(f.path) for f in files)   # one per file, in order
    return CalibrationSet(samples, Calibration(where, digest, len(samples), sum(map(len, samples))))
