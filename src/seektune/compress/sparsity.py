"""Unstructured pruning: zeros inside the decoder layers' dense matrices, by weight magnitude or by Wanda
(|weight| x the L2 norm of its input feature over calibration tokens, compared within each output row; Sun et
al., 2023). The zeros survive save and reload, but dense CPU kernels do not run a sparse matrix any faster and
safetensors does not store it any smaller: the gain needs a sparse runtime (2:4 kernels, sparse formats).
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from seektune.models.layers import decoder_linears


def _zero_lowest(weight: torch.Tensor, scores: torch.Tensor, fraction: float, per_row: bool) -> None:
    if per_row:
        k = int(weight.shape[1] * fraction)
        if k:
            idx = torch.topk(scores, k, dim=1, largest=False).indices
            weight.scatter_(1, idx, 0.0)
        return
    k = int(weight.numel() * fraction)
    if k:
        idx = torch.topk(scores.flatten(), k, largest=False).indices
        weight.view(-1)[idx] = 0.0


@torch.no_grad()
def prune_magnitude(model: nn.Module, sparsity: float) -> None:
    """Zero the smallest-magnitude `sparsity` of each matrix."""
    for linear in decoder_linears(model).values():
        _zero_lowest(linear.weight.data, linear.weight.data.abs(), sparsity, per_row=False)


@torch.no_grad()
def input_norms(model: nn.Module, samples: list[list[int]]) -> dict[str, torch.Tensor]:
    """Per Linear, the L2 norm of each input feature over every calibration token."""
    linears = decoder_linears(model)
    sums = {name: torch.zeros(m.in_features, dtype=torch.float64) for name, m in linears.items()}

    def hook(name):
        def record(module, inputs, output):
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).double()
            sums[name] += (x * x).sum(0).cpu()
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in linears.items()]
    device = next(model.parameters()).device
    try:
        for ids in tqdm(samples, desc="calibration", leave=False):
            model(input_ids=torch.tensor([ids], device=device), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return {name: s.sqrt().float() for name, s in sums.items()}


@torch.no_grad()
def prune_wanda(model: nn.Module, sparsity: float, samples: list[list[int]]) -> None:
    """Zero, in each output row, the `sparsity` of weights with the lowest |W_ij| * ||X_j||."""
    norms = input_norms(model, samples)
    for name, linear in decoder_linears(model).items():
        weight = linear.weight.data
        _zero_lowest(weight, weight.abs() * norms[name].to(weight.device, weight.dtype)[None, :], sparsity,
                     per_row=True)


def measured_sparsity(model: nn.Module) -> float:
    """Fraction of exact zeros in the decoder layers' matrices."""
    linears = decoder_linears(model).values()
    zeros = sum(int((m.weight == 0).sum()) for m in linears)
    return zeros / max(1, sum(m.weight.numel() for m in linears))
