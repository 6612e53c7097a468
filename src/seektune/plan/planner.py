"""A training config against the hardware: the estimate, whether it fits, and the smallest change that fits.

Changes are tried from the least to the most intrusive (checkpointing, a smaller micro-batch with the same
global batch, sharding across the devices, LoRA, QLoRA); the first combination whose peak fits is recommended,
written as the dotted overrides `seektune train` takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from seektune.config import FSDP2_METHODS, Config
from seektune.models import methods
from seektune.plan.estimate import Estimate, Workload, estimate
from seektune.plan.hardware import Hardware
from seektune.plan.shape import ModelShape, from_config

GPU_RESERVED = 1 * 2**30          # CUDA context and allocator slack per GPU
CPU_RUNTIME = 700 * 2**20          # torch + transformers imported, measured RSS before the model loads
HEADROOM = 0.9                     # plan to at most 90% of what is left


@dataclass(frozen=True)
class Option:
    overrides: tuple[str, ...]
    estimate: Estimate
    fits: bool


@dataclass(frozen=True)
class Plan:
    hardware: Hardware
    shape: ModelShape
    configured: Option
    recommended: Option | None   # None when the configured run fits, or nothing tried fits


def usable_bytes(hardware: Hardware) -> int:
    reserved = GPU_RESERVED if hardware.kind == "gpu" else CPU_RUNTIME
    return int((hardware.bytes_each - reserved) * HEADROOM)


def compute_bytes(cfg: Config, hardware: Hardware) -> int:
    if cfg.train.precision == "fp32":
        return 4
    if cfg.train.precision != "auto" or hardware.kind == "gpu":
        return 2
    from seektune.runtime import cpu_supports_fast_bf16

    return 2 if cpu_supports_fast_bf16() else 4


def workload(cfg: Config, hardware: Hardware, supervised_fraction: float, method: str | None = None,
             micro_batch: int | None = None, checkpointing: bool | None = None, shards: int | None = None
             ) -> Workload:
    method = method or cfg.method.name
    shards = shards or (hardware.devices if cfg.train.sharding == "fsdp2" else 1)
    section = _method_section(cfg, method)
    compute = compute_bytes(cfg, hardware)
    # GPUs under `auto` are taken to run bf16 (fp16 only on pre-Ampere cards)
    bf16 = compute == 2 and cfg.train.precision != "fp16"
    frozen_bf16 = methods.frozen_in_bf16(section, cfg.train.frozen_dtype, "bf16" if bf16 else "no", shards > 1)
    spec = methods.get(method)
    return Workload(
        micro_batch_size=micro_batch or cfg.train.micro_batch_size, max_length=cfg.data.max_length,
        supervised_fraction=supervised_fraction, compute_bytes=compute,
        gradient_checkpointing=cfg.train.gradient_checkpointing if checkpointing is None else checkpointing,
        quantized_base=spec.quantization is not None, adapter=spec.adapter, shards=shards,
        frozen_bytes=2 if frozen_bf16 else 4, chunked_loss=cfg.train.chunked_loss, on_cpu=hardware.kind == "cpu")


def _method_section(cfg: Config, method: str):
    """Another method keeps this config's settings (LoRA targets and rank carry over to QLoRA)."""
    return cfg.method if method == cfg.method.name else cfg.method.model_copy(update={"name": method})


def _shape_for(model_config, method: str, cfg: Config, cache: dict) -> ModelShape:
    if method not in cache:
        cache[method] = from_config(model_config, _method_section(cfg, method))
    return cache[method]


def plan(cfg: Config, model_config, hardware: Hardware, supervised_fraction: float = 0.5) -> Plan:
    budget = usable_bytes(hardware)
    shapes: dict[str, ModelShape] = {}
    shape = _shape_for(model_config, cfg.method.name, cfg, shapes)
    configured_estimate = estimate(shape, workload(cfg, hardware, supervised_fraction))
    configured = Option((), configured_estimate, configured_estimate.total <= budget)
    if configured.fits:
        return Plan(hardware, shape, configured, None)
    return Plan(hardware, shape, configured, _recommend(cfg, model_config, hardware, supervised_fraction, budget,
                                                         shapes))


def _methods(cfg: Config) -> list[str]:
    name = cfg.method.name
    ladder = {"full": ["full", "lora", "qlora"], "freeze": ["freeze", "lora", "qlora"], "lora": ["lora", "qlora"]}
    return ladder.get(name, [name])


def _recommend(cfg: Config, model_config, hardware: Hardware, fraction: float, budget: int, shapes: dict
               ) -> Option | None:
    batches, size = [], cfg.train.micro_batch_size
    while size >= 1:
        batches.append(size)
        size //= 2
    shard_choices = [1, hardware.devices] if hardware.devices > 1 else [1]
    for method, shards, checkpointing, micro in product(_methods(cfg), shard_choices, (False, True), batches):
        if shards > 1 and method not in FSDP2_METHODS:
            continue
        shape = _shape_for(model_config, method, cfg, shapes)
        work = workload(cfg, hardware, fraction, method, micro, checkpointing or cfg.train.gradient_checkpointing,
                        shards)
        result = estimate(shape, work)
        if result.total <= budget:
            return Option(_overrides(cfg, method, shards, work, micro), result, True)
    return None


def _overrides(cfg: Config, method: str, shards: int, work: Workload, micro: int) -> tuple[str, ...]:
    out = []
    if method != cfg.method.name:
        out.append(f"method.name={method}")
    if shards > 1 and cfg.train.sharding != "fsdp2":
        out.append("train.sharding=fsdp2")
    if work.gradient_checkpointing and not cfg.train.gradient_checkpointing:
        out.append("train.gradient_checkpointing=true")
    if micro != cfg.train.micro_batch_size:
        accumulation = cfg.train.gradient_accumulation_steps * cfg.train.micro_batch_size // micro
        out += [f"train.micro_batch_size={micro}", f"train.gradient_accumulation_steps={accumulation}"]
    return tuple(out)


__all__ = ["Plan", "Option", "plan", "usable_bytes", "workload"]
