"""`seektune quantize`: weight-only int8 / int4 (torchao), NF4 (bitsandbytes), GPTQ and AWQ (gptqmodel).

Each method is one `Quantizer`. The output is a standard transformers directory whose config.json carries the
`quantization_config`, so plain `from_pretrained` loads it (with the method's library installed) and seektune
eval, chat and serve open it like any model. Sizes are the files' real sizes: on CPU torchao stores int4
unpacked, one int8 per weight.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from seektune.artifacts import write_artifact
from seektune.compress.calibration import CalibrationSet, calibration_set
from seektune.compress.options import QuantizeOptions
from seektune.compress.record import CompressionRecord, weights_bytes
from seektune.compress.source import Source, open_source
from seektune.errors import ConfigError, ModelError
from seektune.models.layers import decoder_linears
from seektune.models.methods import qat

log = logging.getLogger("seektune.compress")
_GROUPS = (128, 64, 32)


@dataclass(frozen=True)
class Quantizer:
    name: str
    extra: str | None            # the pip extra its library comes from (None: a seektune dependency)
    module: str                  # the library, to say what to install when it is missing
    calibrated: bool             # needs calibration samples (GPTQ, AWQ)
    grouped: bool                # takes --group-size
    write: Callable[[Source, QuantizeOptions, Path, "CalibrationSet | None"], dict]   # -> settings used


def layer_widths(model: nn.Module) -> set[int]:
    """Input widths of the Linear layers inside the decoder layers (what quantization groups must divide)."""
    return {m.in_features for m in decoder_linears(model).values()}


def group_size(model: nn.Module, asked: int | None) -> int:
    widths = layer_widths(model)
    fits = [g for g in _GROUPS if all(w % g == 0 for w in widths)]
    if asked is not None:
        bad = sorted(w for w in widths if asked and w % asked)
        if bad:
            raise ConfigError(f"--group-size {asked} does not divide the layer widths {bad}; "
                              f"use {fits[0] if fits else 0}" + ("" if fits else " (per channel)"))
        return asked
    if not fits:
        raise ConfigError(f"no group size of {_GROUPS} divides the layer widths {sorted(widths)}; pass "
                          "--group-size N (a divisor) or 0 (per channel)")
    return fits[0]


def output_dtype(source: Source, opts: QuantizeOptions) -> torch.dtype:
    return source.stored_dtype if opts.dtype == "auto" else getattr(torch, opts.dtype)


@contextlib.contextmanager
def full_precision_directory(source: Source, near: Path) -> Iterator[Path]:
    """A directory transformers can load the merged model from: the source itself for a whole model, else the
    merged weights saved in a scratch directory beside the output (removed afterwards)."""
    if source.artifact.kind.attach is None:
        yield Path(source.artifact.source)
        return
    near.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".merged-", dir=near) as tmp:
        source.model.save_pretrained(tmp)
        source.tokenizer.save_pretrained(tmp)
        yield Path(tmp)


def _load_quantized(source: Source, opts: QuantizeOptions, tmp: Path, quantization_config) -> None:
    from transformers import AutoModelForCausalLM

    with full_precision_directory(source, tmp.parent) as directory:
        model = AutoModelForCausalLM.from_pretrained(str(directory), dtype=output_dtype(source, opts),
                                                     quantization_config=quantization_config)
    model.save_pretrained(str(tmp))


def _torchao_int8(source: Source, opts: QuantizeOptions, tmp: Path, calibration) -> dict:
    from transformers import TorchAoConfig

    from torchao.quantization import Int8WeightOnlyConfig

    # the same rounding as QAT's int8 scheme (qat.base_config(8): symmetric per channel, equal to float
    # rounding), in torchao's Int8Tensor, whose CPU matmul is several times faster than the generic int8 path
    _load_quantized(source, opts, tmp, TorchAoConfig(Int8WeightOnlyConfig()))
    return {"bits": 8, "granularity": "per output channel", "library": "torchao", **_qat_note(source, 8)}


def _torchao_int4(source: Source, opts: QuantizeOptions, tmp: Path, calibration) -> dict:
    from transformers import TorchAoConfig

    trained = source.artifact.info.get("qat") or {}
    asked = opts.group_size if opts.group_size is not None or trained.get("bits") != 4 else trained["group_size"]
    size = group_size(source.model, asked)
    _load_quantized(source, opts, tmp, TorchAoConfig(qat.base_config(4, size)))
    return {"bits": 4, "group_size": size, "library": "torchao", "storage": "int4 values stored as int8 on CPU",
            **_qat_note(source, 4, size)}


def _qat_note(source: Source, bits: int, size: int = 0) -> dict:
    """Whether this quantizes with the scheme the run was trained for (quantization-aware training)."""
    trained = source.artifact.info.get("qat")
    if not trained:
        return {}
    if trained["bits"] != bits or (bits == 4 and trained["group_size"] != size):
        log.warning(f"the run was trained for {trained['bits']}-bit weights (group size {trained['group_size']}); "
                    f"quantizing to {bits} bits (group size {size}) loses what QAT learned")
    return {"qat": trained}


def _bnb_nf4(source: Source, opts: QuantizeOptions, tmp: Path, calibration) -> dict:
    from transformers import BitsAndBytesConfig

    compute = output_dtype(source, opts)
    _load_quantized(source, opts, tmp, BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute))
    return {"bits": 4, "block_size": 64, "double_quant": True, "library": "bitsandbytes"}


def _gptqmodel(source: Source, opts: QuantizeOptions, tmp: Path, calibration) -> dict:
    from seektune.compress.gptq import quantize_with_gptqmodel

    with full_precision_directory(source, tmp.parent) as directory:
        return quantize_with_gptqmodel(directory, opts.method, opts.bits or 4,
                                       group_size(source.model, opts.group_size), calibration.samples, tmp)


QUANTIZERS: dict[str, Quantizer] = {q.name: q for q in (
    Quantizer("int8", "quantize", "torchao", calibrated=False, grouped=False, write=_torchao_int8),
    Quantizer("int4", "quantize", "torchao", calibrated=False, grouped=True, write=_torchao_int4),
    Quantizer("nf4", None, "bitsandbytes", calibrated=False, grouped=False, write=_bnb_nf4),
    Quantizer("gptq", "gptq", "gptqmodel", calibrated=True, grouped=True, write=_gptqmodel),
    Quantizer("awq", "gptq", "gptqmodel", calibrated=True, grouped=True, write=_gptqmodel),
)}


def check_installed(quantizer: Quantizer) -> None:
    import importlib.util

    if importlib.util.find_spec(quantizer.module) is None:
        command = f"pip install 'seektune[{quantizer.extra}]'" if quantizer.extra else f"pip install {quantizer.module}"
        raise ModelError(f"--method {quantizer.name} needs {quantizer.module}: {command}")


def quantize(ref: str, opts: QuantizeOptions) -> CompressionRecord:
    quantizer = QUANTIZERS[opts.method]
    check_installed(quantizer)
    if not quantizer.grouped and opts.group_size is not None:
        raise ConfigError(f"--group-size: {opts.method} does not take a group size (it quantizes per channel or "
                          "in fixed blocks)")
    if opts.bits is not None and opts.method not in ("gptq", "awq"):
        raise ConfigError(f"--bits: {opts.method} has fixed bits; --bits is for gptq and awq")
    if opts.bits is not None and opts.bits not in (4, 8):
        raise ConfigError("--bits: 4 or 8")
    source = open_source(ref)
    calibration = calibration_set(source, opts) if quantizer.calibrated else None
    record = CompressionRecord(opts.method, {}, str(ref), source.base_model, source.bytes_before,
                               calibration=calibration.record if calibration else None)

    def write(tmp: Path) -> None:
        record.settings = quantizer.write(source, opts, tmp, calibration)
        record.bytes_after = weights_bytes(tmp)
        record.write(tmp)

    log.info(f"quantizing {source.artifact.path} ({opts.method})")
    write_artifact(Path(opts.out), write, source.tokenizer,
                   {"method": f"quantize-{opts.method}", "mergeable": False, "compressed_from": str(ref)})
    return record
