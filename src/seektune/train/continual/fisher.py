"""The diagonal Fisher information of a trained model on its own task's data, for EWC and adaptive freezing.

F_i = mean over samples of (d loss_s / d theta_i)^2, where loss_s is the sample's mean token cross-entropy on
its supervised (answer) tokens: the empirical Fisher, one backward pass per sample, over every floating weight
of the model. It is computed at the weights the task ended with (theta*), keyed by the plain transformers
parameter names (`model.layers.0.mlp.up_proj.weight`), so one file serves whatever method the next task uses.
Saved as `fisher.safetensors` in the earlier run, with what it was computed from; a later run reuses it when
that still matches.
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from seektune.data.batching import Row, collate
from seektune.train.objectives.causal_lm import CausalLMObjective

log = logging.getLogger("seektune.train")
FILE = "fisher.safetensors"


def pick(rows: list[Row], samples: int, seed: int) -> list[Row]:
    """`samples` rows (all when there are fewer), chosen by the seed, in a fixed order."""
    order = list(range(len(rows)))
    random.Random(f"fisher/{seed}").shuffle(order)
    return [rows[i] for i in sorted(order[:samples])]


def diagonal_fisher(model: nn.Module, rows: list[Row], pad_id: int, progress: bool = True) -> dict[str, torch.Tensor]:
    """Mean squared per-sample gradient of every floating parameter (fp32, on the CPU)."""
    named = [(n, p) for n, p in model.named_parameters() if p.is_floating_point()]
    was = {n: p.requires_grad for n, p in named}
    for _, p in named:
        p.requires_grad_(True)
    objective = CausalLMObjective(model, selective_head=True)
    fisher = {n: torch.zeros_like(p, dtype=torch.float32, device="cpu") for n, p in named}
    training = model.training
    model.eval()  # no dropout: the Fisher of the model as it predicts
    device = next(model.parameters()).device
    try:
        for row in tqdm(rows, desc="fisher", disable=not progress, dynamic_ncols=True):
            batch = {k: v.to(device) for k, v in collate([row], pad_id, packed=False).items()}
            loss_sum, tokens = objective(**batch)
            model.zero_grad(set_to_none=True)
            (loss_sum / tokens.clamp(min=1)).backward()
            for n, p in named:
                if p.grad is not None:
                    fisher[n] += p.grad.detach().float().cpu() ** 2
        model.zero_grad(set_to_none=True)
    finally:
        for n, p in named:
            p.requires_grad_(was[n])
        model.train(training)
    return {n: f / max(len(rows), 1) for n, f in fisher.items()}


def accumulate(newest_first: list[dict[str, torch.Tensor]], gamma: float) -> dict[str, torch.Tensor]:
    """Online EWC's Fisher over several earlier tasks: sum_k gamma^k F_k, k = 0 for the most recent task."""
    total: dict[str, torch.Tensor] = {}
    for age, fisher in enumerate(newest_first):
        for name, value in fisher.items():
            term = value * gamma ** age
            total[name] = total[name] + term if name in total else term
    return total


def save(path: Path, fisher: dict[str, torch.Tensor], meta: dict) -> None:
    """Atomically: written beside, then renamed into place (a crash never leaves a half file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    shared: dict[int, str] = {}
    tensors = {}
    for name, value in fisher.items():   # tied weights (embeddings = head) are stored once
        key = value.data_ptr()
        if key in shared:
            continue
        shared[key] = name
        tensors[name] = value.contiguous()
    save_file(tensors, str(tmp), metadata={"seektune": json.dumps(meta, sort_keys=True)})
    os.replace(tmp, path)


def matches(path: Path, meta: dict) -> bool:
    """A saved Fisher computed from `meta` exists (only its header is read)."""
    if not path.is_file():
        return False
    with safe_open(str(path), framework="pt") as f:
        stored = json.loads((f.metadata() or {}).get("seektune", "{}"))
    if stored != meta:
        log.info("%s was computed from %s; recomputing for %s", path, stored, meta)
    return stored == meta


def load(path: Path, meta: dict | None = None) -> dict[str, torch.Tensor] | None:
    """The saved Fisher, or None when there is none or it was computed from something else than `meta`."""
    if not path.is_file() or (meta is not None and not matches(path, meta)):
        return None
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def layer_importance(fisher: dict[str, torch.Tensor], n_layers: int) -> list[float]:
    """Mean Fisher per decoder layer (parameters named `...layers.<i>.`), for adaptive freezing."""
    sums, counts = [0.0] * n_layers, [0] * n_layers
    for name, value in fisher.items():
        parts = name.split(".")
        for a, b in zip(parts, parts[1:]):
            if a == "layers" and b.isdigit() and int(b) < n_layers:
                sums[int(b)] += value.sum().item()
                counts[int(b)] += value.numel()
                break
    return [s / c if c else 0.0 for s, c in zip(sums, counts)]
