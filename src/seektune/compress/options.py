"""Options of `seektune quantize`, `prune` and `export`; each field is the flag of the same name, checked like a
config (a bad value is one line naming its flag)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from seektune.schema import Section

Dtype = Literal["auto", "float32", "bfloat16", "float16"]


class CalibrationOptions(Section):
    calibration: str | None = Field(None, description="calibration data (any training format; default: the run's "
                                    "own training data, rendered with its chat template)")
    calibration_samples: int = Field(128, ge=1, description="calibration samples to use")
    calibration_length: int = Field(512, ge=16, description="tokens per calibration sample at most")
    seed: int = Field(0, description="seed for choosing calibration samples")


class QuantizeOptions(CalibrationOptions):
    method: Literal["int8", "int4", "nf4", "gptq", "awq"] = Field(description="quantization method")
    bits: int | None = Field(None, description="bits per weight for gptq / awq (4 or 8; default 4)")
    group_size: int | None = Field(None, ge=0, description="weights sharing one scale (int4, gptq, awq; default: "
                                   "the largest of 128, 64, 32 that divides every layer's width; 0: per channel)")
    dtype: Dtype = Field("auto", description="dtype of the weights left unquantized (embeddings, norms); auto: "
                         "as stored")
    out: str = Field(description="output model directory")


class PruneOptions(CalibrationOptions):
    method: Literal["l1-channels", "activation-channels", "wanda", "magnitude"] = Field(
        description="pruning method: whole channels by weight L1 norm or by activation-aware importance "
        "(calibrated), or zeros inside matrices (wanda: calibrated, magnitude)")
    sparsity: float = Field(gt=0, lt=1, description="fraction to remove: MLP channels (and KV groups with "
                            "--prune-heads) for *-channels, or weights in each matrix (wanda, magnitude)")
    steps: int = Field(1, ge=1, description="rounds to reach the sparsity (*-channels: recovery between rounds)")
    recover_steps: int = Field(0, ge=0, description="recovery fine-tuning steps after each round: full "
                               "fine-tuning through the training loop, on the run's own data and settings (0: none)")
    recover_learning_rate: float = Field(5e-5, gt=0, description="peak learning rate of recovery fine-tuning")
    recover_data: str | None = Field(None, description="training data for recovery (default: the run's own)")
    prune_heads: bool = Field(False, description="*-channels: also remove attention heads (whole KV groups, "
                              "by L1 norm)")
    out: str = Field(description="output model directory")


class ExportOptions(Section):
    format: Literal["gguf"] = Field("gguf", description="export format")
    type: Literal["f32", "f16", "bf16", "q8_0", "q4_0"] = Field("f16", description="GGUF tensor type")
    out: str = Field(description="output .gguf file (an Ollama Modelfile is written beside it)")
