"""How the loop's model is spread over processes, and the launches that would silently not spread it.

`train.sharding: none` hands the objective to accelerate: DDP across processes, or accelerate's own FSDP /
DeepSpeed when launched with such a config on GPUs. `train.sharding: fsdp2` applies torch's `fully_shard`
itself (every decoder layer one unit, the rest in the root), because accelerate shards only on GPUs: on CPU an
FSDP config is ignored and each process quietly trains its own whole copy. The loop calls the same four things
either way: `prepare`, `clip_grad_norm`, `save_engine_state` / `load_engine_state` (a sharded checkpoint in
torch.distributed.checkpoint's format, every process writing its own shard) and `full_state_dict` (gathered for
the final artifact, which is then the same HF/PEFT directory an unsharded run writes).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import MethodType
from typing import Iterator

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, parse_flag_from_env
from torch import nn

from seektune.config import Config
from seektune.errors import ConfigError
from seektune.models.layers import decoder_layers

_ENGINE_DIR = "engine"
_ACCELERATE_SHARDED = (DistributedType.FSDP, DistributedType.DEEPSPEED)  # engines accelerate runs itself
_LAUNCH = "torchrun --nproc-per-node N -m seektune.cli train CONFIG (or accelerate launch --multi_gpu " \
          "--num_processes N without an FSDP/DeepSpeed config)"


def check_launch(cfg: Config, accelerator: Accelerator) -> None:
    """Refuse a launch whose processes would each train the whole model while the user asked for sharding,
    or that started several processes which do not see each other."""
    kind, processes = accelerator.distributed_type, accelerator.num_processes
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1 and processes == 1:
        raise ConfigError(f"the launcher started {world} processes but accelerate sees one: each would train "
                          "alone on the same data. Launch with " + _LAUNCH)
    for flag, engine, wanted in (("ACCELERATE_USE_FSDP", "FSDP", DistributedType.FSDP),
                                 ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed", DistributedType.DEEPSPEED)):
        if parse_flag_from_env(flag) and kind != wanted:
            where = "on CPU" if not torch.cuda.is_available() else f"as {kind.value}"
            raise ConfigError(f"accelerate was launched with a {engine} config, but it runs {where} without "
                              f"{engine} (accelerate shards only on GPUs): every process would hold the whole "
                              f"model. Drop the {engine} config and set train.sharding=fsdp2, launched as {_LAUNCH}")
    if is_fsdp2(cfg):
        if kind in _ACCELERATE_SHARDED:
            raise ConfigError(f"train.sharding=fsdp2 and accelerate's {kind.value} config both shard the model; "
                              "keep one (train.sharding=none keeps accelerate's)")
        if processes < 2:
            raise ConfigError("train.sharding=fsdp2 splits the model across processes, and this is one process "
                              "(it would hold the whole model). Launch with " + _LAUNCH)


def is_fsdp2(cfg: Config) -> bool:
    return cfg.train.sharding == "fsdp2"


def shard(objective: nn.Module, accelerator: Accelerator) -> nn.Module:
    """`fully_shard` each decoder layer, then the objective (embeddings, norm, head, anything left), in place:
    parameters become DTensors, so the optimizer must be built after this. Autocast wraps the forward as
    accelerate's `prepare` would."""
    from torch.distributed.fsdp import fully_shard

    for layer in decoder_layers(objective.model):
        fully_shard(layer)
    fully_shard(objective)
    if accelerator.mixed_precision != "no":
        objective.forward = MethodType(_autocast_forward(type(objective).forward, accelerator), objective)
    return objective


def _autocast_forward(forward, accelerator: Accelerator):
    def wrapped(self, *args, **kwargs):
        with accelerator.autocast():
            loss_sum, units = forward(self, *args, **kwargs)
        return loss_sum.float(), units
    return wrapped


def prepare(cfg: Config, accelerator: Accelerator, objective: nn.Module, make_optimizer):
    """(objective, optimizer) ready for the loop. `make_optimizer(model)` builds the optimizer over the model's
    parameters as they are after sharding."""
    if is_fsdp2(cfg):
        objective = shard(objective, accelerator)
        return objective, accelerator.prepare(make_optimizer(objective.model))
    optimizer = make_optimizer(objective.model)
    return accelerator.prepare(objective, optimizer)


def clip_grad_norm(cfg: Config, accelerator: Accelerator, params: list[nn.Parameter], max_norm: float
                   ) -> torch.Tensor:
    """Clip by the norm over all processes' shards (a sharded gradient's norm is partial until reduced)."""
    if not is_fsdp2(cfg):
        return accelerator.clip_grad_norm_(params, max_norm)
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.nn.utils.get_total_norm(grads, foreach=True)
    if hasattr(total, "full_tensor"):
        total = total.full_tensor()
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, total, foreach=True)
    return total


def _inner_optimizer(optimizer):
    return getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps the torch one


def _sharded_state(model: nn.Module, optimizer) -> dict:
    """This process's shards of the trainable weights and their AdamW state, as saved and as loaded (the
    frozen weights come from the base model, so neither side holds them)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    weights, optim = get_state_dict(model, _inner_optimizer(optimizer),
                                    options=StateDictOptions(ignore_frozen_params=True))
    return {"model": weights, "optimizer": optim}


def save_engine_state(cfg: Config, accelerator: Accelerator, tmp: Path, model: nn.Module, optimizer) -> bool:
    """Write the engine's own sharded checkpoint under `tmp/engine` (every process); True when the weights and
    optimizer state are in it, so the main process's single-file copies are skipped."""
    if is_fsdp2(cfg):
        import torch.distributed.checkpoint as dcp

        dcp.save(_sharded_state(model, optimizer), checkpoint_id=str(tmp / _ENGINE_DIR))
        return True
    if accelerator.distributed_type in _ACCELERATE_SHARDED:
        accelerator.save_state(str(tmp / _ENGINE_DIR))
    return False


def load_engine_state(cfg: Config, accelerator: Accelerator, checkpoint: Path, model: nn.Module, optimizer) -> bool:
    """Restore what `save_engine_state` wrote; True when it held the weights and optimizer state."""
    if is_fsdp2(cfg):
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        state = _sharded_state(model, optimizer)
        dcp.load(state, checkpoint_id=str(checkpoint / _ENGINE_DIR))  # fails when a requested tensor is absent
        # not strict: the frozen weights are not in the checkpoint; they came from the base model
        set_state_dict(model, _inner_optimizer(optimizer), model_state_dict=state["model"],
                       optim_state_dict=state["optimizer"],
                       options=StateDictOptions(ignore_frozen_params=True, strict=False))
        return True
    if accelerator.distributed_type in _ACCELERATE_SHARDED:
        accelerator.load_state(str(checkpoint / _ENGINE_DIR))
    return False


def full_state_dict(cfg: Config, accelerator: Accelerator, model: nn.Module, whole_model: bool) -> dict | None:
    """The full weights, gathered on the main process (every process must call this), when the model is
    sharded or a whole model is saved from several processes; None when the model's own state dict is whole."""
    if is_fsdp2(cfg):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if whole_model and accelerator.distributed_type != DistributedType.NO:
        return accelerator.get_state_dict(model)  # accelerate's engines gather the full weights
    return None


@contextlib.contextmanager
def whole_state_dict(model: nn.Module, state: dict | None) -> Iterator[None]:
    """Let every saver (transformers', peft's) read `state` as the model's state dict while it writes the
    artifact: the sharded module's own would hand out DTensor shards."""
    if state is None:
        yield
        return
    model.state_dict = lambda *args, **kwargs: dict(state)
    try:
        yield
    finally:
        del model.state_dict
