"""The loop's fast paths change memory and speed, never the numbers: the chunked head + cross-entropy gives the
plain path's loss and gradients (token weights, label smoothing, a trainable head, bf16 autocast), and LoRA
layers that skip peft's fp32 round trip of their input under autocast give the same outputs and gradients."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seektune.train.objectives import chunked_ce
from seektune.train.objectives.chunked_ce import chunked_head_loss, supports_chunked_head


def _plain(hidden, head, targets, weights, eps):
    losses = F.cross_entropy(head(hidden).float(), targets, reduction="none", label_smoothing=eps)
    return (losses * weights).sum() if weights is not None else losses.sum()


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("eps, weighted, head_trains", [(0.0, False, False), (0.1, True, True)])
def test_chunked_head_loss_equals_the_plain_head_and_cross_entropy(monkeypatch, autocast, eps, weighted,
                                                                   head_trains):
    monkeypatch.setattr(chunked_ce, "CHUNK_NUMBERS", 7 * 50)   # 7 tokens a chunk: 3 chunks, the last one short
    torch.manual_seed(0)
    head = nn.Linear(16, 50, bias=False)
    head.weight.requires_grad_(head_trains)
    hidden = torch.randn(17, 16, requires_grad=True)
    targets = torch.randint(0, 50, (17,))
    weights = torch.rand(17) + 0.5 if weighted else None
    grads = []
    for fn in (_plain, lambda h, m, t, w, e: chunked_head_loss(h, m, t, w, e)):
        hidden.grad = head.weight.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = fn(hidden, head, targets, weights, eps)
        (loss * 0.37).backward()   # the loop scales the summed loss by 1/units
        grads.append((loss.detach(), hidden.grad.clone(), head.weight.grad))
    (loss_a, gh_a, gw_a), (loss_b, gh_b, gw_b) = grads
    tol = 2e-2 if autocast else 1e-5
    assert loss_b.dtype == torch.float32
    torch.testing.assert_close(loss_b, loss_a.float(), rtol=tol, atol=tol)
    torch.testing.assert_close(gh_b, gh_a, rtol=tol, atol=tol * 0.1)
    if head_trains:
        torch.testing.assert_close(gw_b, gw_a, rtol=tol, atol=tol * 0.1)
    else:
        assert gw_a is None and gw_b is None


def test_only_plain_bias_free_heads_are_chunked():
    assert supports_chunked_head(nn.Linear(4, 8, bias=False))
    assert not supports_chunked_head(nn.Linear(4, 8))
    assert not supports_chunked_head(nn.Embedding(8, 4))


def test_lora_without_the_fp32_round_trip_gives_the_same_outputs_and_gradients(tiny_llama_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from seektune.models.layers import float32_master, skip_adapter_input_casts, store_frozen_in

    ids = torch.randint(0, 100, (2, 24))
    results, copies = [], []
    for skip in (False, True):
        torch.manual_seed(1)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir),
                               LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
        float32_master(model)
        store_frozen_in(model, torch.bfloat16)
        if skip:
            assert skip_adapter_input_casts(model) == 2 * 7
        with torch.profiler.profile() as prof, torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(input_ids=ids, use_cache=False).logits.float()
        out.square().mean().backward()
        copies.append(sum(e.count for e in prof.key_averages() if e.key == "aten::_to_copy"))
        results.append((out.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]))
        if skip:   # outside autocast peft's cast still runs: fp32 adapters on the bf16 base work
            with torch.no_grad():
                model(input_ids=ids, use_cache=False)
    (out_a, grads_a), (out_b, grads_b) = results
    torch.testing.assert_close(out_b, out_a, rtol=0, atol=0)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    assert copies[1] < copies[0] - 2 * 7   # at least one full-size cast fewer per LoRA layer


def test_chunked_head_loss_under_no_grad_only_sums_the_loss():
    torch.manual_seed(0)
    head, hidden, targets = nn.Linear(8, 30, bias=False), torch.randn(5, 8), torch.randint(0, 30, (5,))
    with torch.no_grad():
        loss = chunked_head_loss(hidden, head, targets, None)
    torch.testing.assert_close(loss, _plain(hidden, head, targets, None, 0.0).detach())
    assert loss.grad_fn is None


def test_wrapping_lora_does_not_import_gptqmodel(tiny_llama_dir, monkeypatch):
    """peft's GPT-QModel probe imported gptqmodel, datasets, pyarrow and pandas (~290 MB) into every LoRA run."""
    import sys

    from seektune.config import ModelConfig
    from seektune.method_config import MethodConfig
    from seektune.models import methods
    from seektune.models.loading import load_model

    for name in [m for m in sys.modules if m == "gptqmodel" or m.startswith("gptqmodel.")]:
        monkeypatch.delitem(sys.modules, name)   # as in a fresh `seektune train` (restored afterwards)
    methods.prepare(load_model(ModelConfig(name_or_path=str(tiny_llama_dir))), MethodConfig(name="lora"))
    assert "gptqmodel" not in sys.modules
