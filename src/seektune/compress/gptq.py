"""GPTQ and AWQ through gptqmodel (the maintained successor of auto-gptq and autoawq), on the calibration
samples of `calibration.py`. The saved directory is gptqmodel's standard format: plain transformers loads it
once gptqmodel and optimum are installed (the `gptq` extra).

On CPU: gptqmodel sizes its worker pool from GPTQMODEL_CPU_WORKERS (set to the torch threads here, or it
oversubscribes 2 cores), and AWQ runs on its torch backend, whose clipping search takes output widths in
blocks of 64.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import torch

from seektune.errors import ConfigError

_AWQ_BLOCK = 64


def _check_awq_widths(model_dir: Path) -> None:
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(str(model_dir))
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    widths = {"hidden_size": cfg.hidden_size, "intermediate_size": cfg.intermediate_size,
              "key/value width": (cfg.num_key_value_heads or heads) * head_dim}
    bad = {k: v for k, v in widths.items() if v % _AWQ_BLOCK}
    if bad:
        raise ConfigError(f"awq on CPU needs layer widths that are multiples of {_AWQ_BLOCK}; this model has "
                          f"{bad}: use --method gptq")


def _keep_logs_out_of_the_working_directory() -> None:
    """gptqmodel appends per-layer logs, from a worker thread, to files under a relative ./logs (its
    `loop_processor._PROJECT_LOG_DIR`), which would land in the user's working directory. Point it at a private
    temporary directory that lives until the process ends, so a late write never finds it gone."""
    from gptqmodel.looper import loop_processor

    if not getattr(loop_processor, "_PROJECT_LOG_DIR", Path("/")).is_absolute():
        scratch = Path(tempfile.mkdtemp(prefix="seektune-gptqmodel-logs-"))
        atexit.register(shutil.rmtree, scratch, True)
        loop_processor._PROJECT_LOG_DIR = scratch


def quantize_with_gptqmodel(model_dir: Path, method: str, bits: int, group_size: int,
                            samples: list[list[int]], out: Path) -> dict:
    # gptqmodel's own default ((cores + 1) // 2) gives a 1-2 core machine one CPU worker, and its model loader
    # always asks for two of them ("Virtual pool 'model_loader:cpu' requests 2 workers but parent 'cpu' only has 1")
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, torch.get_num_threads())))
    from gptqmodel import BACKEND, GPTQModel, QuantizeConfig
    from gptqmodel.quantization import FORMAT, METHOD

    calibration = [{"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in samples]
    size = group_size or -1   # gptqmodel's "per channel"
    if method == "awq":
        _check_awq_widths(model_dir)
        config = QuantizeConfig(bits=bits, group_size=size, quant_method=METHOD.AWQ, format=FORMAT.GEMM)
        backend = BACKEND.AWQ_TORCH if not torch.cuda.is_available() else BACKEND.AUTO
    else:
        config = QuantizeConfig(bits=bits, group_size=size)
        backend = BACKEND.AUTO
    _keep_logs_out_of_the_working_directory()
    model = GPTQModel.load(str(model_dir), config)
    model.quantize(calibration, batch_size=1, backend=backend, calibration_data_min_length=1)
    model.save(str(out))
    (out / "quant_log.csv").unlink(missing_ok=True)   # gptqmodel's per-layer log: not part of the model
    return {"bits": bits, "group_size": group_size, "library": "gptqmodel",
            "format": "gemm" if method == "awq" else "gptq"}
