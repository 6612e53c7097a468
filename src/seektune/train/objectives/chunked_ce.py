"""The output head and cross-entropy in chunks of supervised tokens, gradients computed on the way.

The plain path holds, for every supervised token, the head's logits (bf16 under autocast), their fp32 copy and
log-softmax for backward, then in backward their fp32 and bf16 gradients: ten bytes or more per vocabulary entry
per token (about 0.6 GB for 1,250 answer tokens of a 49k vocabulary, the largest single part of a LoRA step's
peak). Here each chunk's logits live only while the chunk is processed: its loss and the gradients of that loss
with respect to the hidden states (and the head's weight, when it trains) are computed in forward and kept, and
backward only scales them by the incoming gradient. The same idea as Liger's fused linear cross-entropy, in torch
ops, so it runs wherever torch does.

Same arithmetic as `F.cross_entropy(logits.float(), targets, label_smoothing=eps, reduction="none")` times the
per-token weights, summed: the head's matmul in the autocast dtype (as autocast would run it), softmax in fp32.
"""

from __future__ import annotations

import torch
from torch import nn

# a chunk's fp32 logits are at most this many numbers: on a CPU 16 MB, small enough to stay out of the peak and
# large enough that the head's matmul runs as fast per token as one big one (measured); on a GPU 256 MB, so the
# chunk's matmul still fills the tensor cores (about 440 rows of a 152k vocabulary; not measured yet)
CHUNK_NUMBERS = 4 * 2**20
ACCELERATOR_CHUNK_NUMBERS = 64 * 2**20


def chunk_rows(vocab: int, on_cpu: bool) -> int:
    """Answer tokens per chunk for this vocabulary and device."""
    return max(1, (CHUNK_NUMBERS if on_cpu else ACCELERATOR_CHUNK_NUMBERS) // vocab)


def chunked_head_loss(hidden: torch.Tensor, head: nn.Linear, targets: torch.Tensor, weights: torch.Tensor | None,
                      label_smoothing: float = 0.0) -> torch.Tensor:
    """Sum over tokens of weight x cross-entropy(head(hidden), target); hidden is (tokens, width)."""
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    return _HeadLoss.apply(hidden, head.weight, targets, weights, label_smoothing, dtype)


def supports_chunked_head(head: nn.Module) -> bool:
    """A plain bias-free Linear head (not an adapter-wrapped one, whose forward is not just its weight)."""
    return type(head) is nn.Linear and head.bias is None


class _HeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, weights, label_smoothing, dtype):
        vocab = weight.shape[0]
        chunk = chunk_rows(vocab, hidden.device.type == "cpu")
        hidden_grad, weight_grad = ctx.needs_input_grad[:2]   # both False under no_grad (evaluation)
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(dtype)
            h_all = hidden.to(dtype)
            grad_hidden = torch.zeros(h_all.shape, dtype=torch.float32, device=h_all.device) \
                if hidden_grad else None
            grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) \
                if weight_grad else None
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            for start in range(0, hidden.shape[0], chunk):
                h = h_all[start:start + chunk]
                t = targets[start:start + chunk]
                logits = (h @ w.t()).float()
                lse = torch.logsumexp(logits, dim=-1)
                loss = lse - (1 - label_smoothing) * logits.gather(1, t[:, None]).squeeze(1)
                if label_smoothing:
                    loss = loss - label_smoothing * logits.mean(dim=-1)
                tw = weights[start:start + chunk].float() if weights is not None else None
                total += (loss * tw).sum() if tw is not None else loss.sum()
                if not (hidden_grad or weight_grad):
                    continue
                # d loss / d logits = softmax - (1 - eps) * onehot - eps / V, times the token's weight
                grad = logits.sub_(lse[:, None]).exp_()
                grad.scatter_add_(1, t[:, None], grad.new_full((t.shape[0], 1), -(1 - label_smoothing)))
                if label_smoothing:
                    grad.sub_(label_smoothing / vocab)
                if tw is not None:
                    grad.mul_(tw[:, None])
                grad = grad.to(dtype)
                if grad_hidden is not None:
                    grad_hidden[start:start + chunk] = grad @ w
                if grad_weight is not None:
                    grad_weight += (grad.t() @ h).float()
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.hidden_dtype, ctx.weight_dtype = hidden.dtype, weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, grad_weight = ctx.saved_tensors
        gh = (grad_hidden * grad_output).to(ctx.hidden_dtype) if grad_hidden is not None else None
        gw = (grad_weight * grad_output).to(ctx.weight_dtype) if grad_weight is not None else None
        return gh, gw, None, None, None, None
