"""Reshape a running batch's KV cache: drop finished rows, add newly prefilled rows, and cut columns that are
padding for every row. Rows are left-padded, so every row's newest token is in the last column and one decode
step serves them all; the attention mask hides the padding.

Works on transformers' `DynamicCache` whose layers are plain `DynamicLayer`s (keys/values of shape
[batch, kv_heads, seq, head_dim]); `check_supported` says so up front for other cache layouts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicCache, DynamicLayer

from seektune.errors import ModelError


def check_supported(cache: DynamicCache) -> None:
    odd = {type(layer).__name__ for layer in cache.layers if type(layer) is not DynamicLayer}
    if odd:
        raise ModelError(f"the batched serving engine needs a plain dynamic KV cache; this model uses "
                         f"{', '.join(sorted(odd))} (sliding-window or hybrid attention)")


def keep_rows(cache: DynamicCache, mask: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """Keep `rows` of the cache and the attention mask; returns the new mask."""
    index = torch.tensor(rows, dtype=torch.long, device=mask.device)
    cache.batch_select_indices(index)
    return mask[index]


def trim_left(cache: DynamicCache, mask: torch.Tensor) -> torch.Tensor:
    """Drop leading columns that no remaining row attends to (left after a long row finished)."""
    used = mask.any(dim=0).nonzero()
    cut = int(used[0]) if len(used) else 0
    if cut == 0:
        return mask
    for layer in cache.layers:
        layer.keys, layer.values = layer.keys[:, :, cut:], layer.values[:, :, cut:]
    return mask[:, cut:]


def join(running: DynamicCache | None, running_mask: torch.Tensor | None, new: DynamicCache,
         new_mask: torch.Tensor) -> tuple[DynamicCache, torch.Tensor]:
    """Rows of `new` appended below `running`, both left-padded to the longer sequence."""
    if running is None:
        return new, new_mask
    width = max(running_mask.shape[1], new_mask.shape[1])

    def pad(t: torch.Tensor, dim_from_end: int) -> torch.Tensor:
        missing = width - t.shape[-dim_from_end]
        if missing == 0:
            return t
        spec = [0, 0] * (dim_from_end - 1) + [missing, 0]
        return F.pad(t, spec)

    for old, add in zip(running.layers, new.layers):
        old.keys = torch.cat([pad(old.keys, 2), pad(add.keys, 2)], dim=0)
        old.values = torch.cat([pad(old.values, 2), pad(add.values, 2)], dim=0)
    return running, torch.cat([pad(running_mask, 1), pad(new_mask, 1)], dim=0)
