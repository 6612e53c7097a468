import torch

from seektune.data.batching import collate, epoch_order, pack, unpacked
from seektune.data.render import IGNORE, Sample
from seektune.train.objectives import CausalLMObjective


def _samples(tokenizer, texts):
    out = []
    for t in texts:
        ids = tokenizer(t, add_special_tokens=False)["input_ids"]
        out.append(Sample(ids, ids[1:] + [IGNORE]))
    return out


def test_packing_fills_rows_and_keeps_every_token(tiny_tokenizer):
    samples = _samples(tiny_tokenizer, ["hello world"] * 3 + ["the quick brown fox jumps over the lazy dog"] * 4)
    rows = pack(samples, 24)
    assert sum(len(r.input_ids) for r in rows) == sum(len(s.input_ids) for s in samples)
    assert all(len(r.input_ids) <= 24 for r in rows)
    assert len(rows) < len(samples)
    assert sum(r.supervised for r in rows) == sum(s.supervised for s in samples)


def test_packed_rows_do_not_leak_attention_or_positions(tiny_llama_dir, tiny_tokenizer):
    """Each sample's logits in a packed row equal its logits when run alone."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    samples = _samples(tiny_tokenizer, ["Patients must fast for ten hours.", "Chest pain is Code Amber.",
                                        "hello world"])
    [row] = pack(samples, 64)
    batch = collate([row], tiny_tokenizer.pad_token_id, packed=True)
    assert "attention_mask" not in batch
    with torch.no_grad():
        # use_cache=False as in the objective: with a KV cache transformers skips packed-sequence detection
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        offset = 0
        for i in range(3):
            ids = torch.tensor([samples[i].input_ids])
            alone = model(input_ids=ids).logits[0]
            n = ids.shape[1]
            # pack() keeps original order inside a row
            torch.testing.assert_close(packed[offset:offset + n], alone, atol=1e-5, rtol=1e-4)
            offset += n


def test_padding_mode_masks_pads_and_never_targets_them(tiny_tokenizer):
    rows = unpacked(_samples(tiny_tokenizer, ["hello world", "the quick brown fox jumps"]))
    batch = collate(rows, tiny_tokenizer.pad_token_id, packed=False)
    assert batch["input_ids"].shape[1] % 8 == 0
    n0 = len(rows[0].input_ids)
    assert batch["attention_mask"][0, :n0].all() and not batch["attention_mask"][0, n0:].any()
    assert (batch["targets"][0, n0:] == IGNORE).all()


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    assert epoch_order(50, 1, 0) == epoch_order(50, 1, 0)
    assert epoch_order(50, 1, 0) != epoch_order(50, 1, 1)
    assert sorted(epoch_order(50, 1, 3)) == list(range(50))


def test_selective_head_loss_equals_full_forward_loss(tiny_llama_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    samples = _samples(tiny_tokenizer, ["Patients must fast for ten hours.", "hello world the lazy dog"])
    samples[0].targets[:3] = [IGNORE] * 3
    batch = collate(pack(samples, 64), tiny_tokenizer.pad_token_id, packed=True)
    fast, slow = CausalLMObjective(model, True), CausalLMObjective(model, False)
    assert fast.selective_head and not slow.selective_head
    with torch.no_grad():
        (a, n), (b, m) = fast(**batch), slow(**batch)
    assert n == m == sum(s.supervised for s in samples)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-5)


def test_packed_loss_equals_the_sum_of_per_sample_losses(tiny_llama_dir, tiny_tokenizer):
    """Through the training objective: packing changes nothing about any sample's loss."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).train()  # train mode: use_cache defaults on
    objective = CausalLMObjective(model)
    samples = _samples(tiny_tokenizer, ["Patients must fast for ten hours.", "Chest pain is Code Amber.",
                                        "hello world"])
    with torch.no_grad():
        packed, _ = objective(**collate(pack(samples, 64), tiny_tokenizer.pad_token_id, packed=True))
        alone = sum(objective(**collate(unpacked([s]), tiny_tokenizer.pad_token_id, packed=False))[0]
                    for s in samples)
    torch.testing.assert_close(packed, alone, atol=1e-4, rtol=1e-5)
