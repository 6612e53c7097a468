"""Continual learning's parts against hand-computed values: the EWC / L2-SP penalty (whole weights and LoRA's
B @ A), the diagonal Fisher, online accumulation, rank-based replay probabilities and the replay step plan."""

import collections

import pytest
import torch
from torch import nn

from seektune.data.batching import Row
from seektune.train.continual import fisher as fisher_io
from seektune.train.continual.anchors import AnchorPenalty, plain_name
from seektune.train.continual.replay import ReplayPlan, rank_probabilities


class TwoWeights(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 2, bias=False)
        self.b = nn.Linear(2, 1, bias=False)


def test_ewc_penalty_of_whole_weights_is_half_weight_times_fisher_times_squared_change():
    model = TwoWeights()
    with torch.no_grad():
        model.a.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        model.b.weight.copy_(torch.tensor([[5.0, 6.0]]))
    model.b.requires_grad_(False)   # frozen weights are not anchored
    fisher = {"a.weight": torch.tensor([[1.0, 0.0], [2.0, 0.5]]), "b.weight": torch.ones(1, 2)}
    hook = AnchorPenalty("ewc", model, weight=10.0, importance=fisher)
    assert hook.penalty().item() == 0.0
    with torch.no_grad():
        model.a.weight += torch.tensor([[1.0, 1.0], [-2.0, 0.0]])
        model.b.weight += 100.0
    # 10/2 * (1*1 + 0*1 + 2*4 + 0.5*0) = 45
    assert hook.penalty().item() == pytest.approx(45.0)
    assert hook.metrics() == {"ewc_penalty": pytest.approx(45.0)}
    l2sp = AnchorPenalty("l2sp", model, weight=0.5, importance=None)
    with torch.no_grad():
        model.a.weight -= 3.0
    assert l2sp.penalty().item() == pytest.approx(0.25 * 4 * 9.0)   # 0.5/2 * sum of 4 squared changes of 3
    l2sp.penalty().backward()
    assert torch.allclose(model.a.weight.grad, torch.full((2, 2), -1.5))   # 0.5 * (theta - theta0)


def test_ewc_penalty_of_lora_is_measured_on_scale_times_b_at_a(tiny_llama_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], lora_dropout=0.0))
    target = "model.layers.1.self_attn.q_proj.weight"
    shape = model.get_parameter("base_model.model." + target.replace(".weight", ".base_layer.weight")).shape
    fisher = {f"model.layers.{i}.self_attn.q_proj.weight": torch.rand(shape) for i in range(2)}
    hook = AnchorPenalty("ewc", model, weight=3.0, importance=fisher)
    assert hook.penalty().item() == 0.0   # B starts at zero: no change yet
    layer = model.base_model.model.model.layers[1].self_attn.q_proj
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_()
    delta = 2.0 * layer.lora_B["default"].weight @ layer.lora_A["default"].weight   # scale = alpha / r = 2
    expected = 3.0 / 2 * (fisher[target] * delta ** 2).sum()
    assert hook.penalty().item() == pytest.approx(expected.item(), rel=1e-5)
    hook.penalty().backward()
    assert layer.lora_B["default"].weight.grad.abs().sum() > 0


def test_peft_names_map_to_plain_transformers_names():
    assert plain_name("base_model.model.model.layers.0.mlp.up_proj") == "model.layers.0.mlp.up_proj"
    assert plain_name("base_model.model.lm_head.modules_to_save.default.weight") == "lm_head.weight"
    assert plain_name("model.layers.3.self_attn.o_proj.weight") == "model.layers.3.self_attn.o_proj.weight"


def _rows(tokenizer, texts):
    rows = []
    for prompt, answer in texts:
        p, a = tokenizer(prompt)["input_ids"], tokenizer(answer)["input_ids"]
        ids = p + a
        targets = [-100] * (len(p) - 1) + a + [-100]   # next-token targets for the answer tokens
        rows.append(Row(ids, targets[:len(ids)], list(range(len(ids)))))
    return rows


def test_diagonal_fisher_is_the_mean_squared_per_sample_gradient(tiny_llama_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    rows = _rows(tiny_tokenizer, [("Which days?", " Tuesdays."), ("How long?", " Ten hours before a blood draw.")])
    fisher = fisher_io.diagonal_fisher(model, rows, tiny_tokenizer.pad_token_id, progress=False)
    name = "model.layers.0.mlp.up_proj.weight"
    by_hand = torch.zeros_like(model.get_parameter(name))
    for row in rows:
        ids, targets = torch.tensor([row.input_ids]), torch.tensor([row.targets])
        logits = model(input_ids=ids).logits[0]
        keep = targets[0] != -100
        loss = nn.functional.cross_entropy(logits[keep], targets[0][keep])   # the sample's mean token loss
        (grad,) = torch.autograd.grad(loss, model.get_parameter(name))
        by_hand += grad ** 2
    assert torch.allclose(fisher[name], by_hand / 2, rtol=1e-4, atol=1e-12)
    assert fisher[name].abs().sum() > 0
    assert not any(p.requires_grad is False for p in model.parameters())   # requires_grad restored


def test_fisher_file_round_trip_and_recompute_on_other_source(tmp_path):
    path = tmp_path / fisher_io.FILE
    values = {"w": torch.tensor([1.0, 2.0])}
    fisher_io.save(path, values, {"samples": 3})
    assert torch.equal(fisher_io.load(path, {"samples": 3})["w"], values["w"])
    assert fisher_io.load(path, {"samples": 4}) is None
    assert not list(tmp_path.glob(".*tmp"))


def test_online_fisher_discounts_older_tasks_by_gamma():
    newest, older, oldest = {"w": torch.tensor([1.0])}, {"w": torch.tensor([2.0]), "v": torch.tensor([1.0])}, \
        {"w": torch.tensor([4.0])}
    total = fisher_io.accumulate([newest, older, oldest], gamma=0.5)
    assert total["w"].item() == pytest.approx(1 + 0.5 * 2 + 0.25 * 4)
    assert total["v"].item() == pytest.approx(0.5)


def test_layer_importance_is_the_mean_fisher_per_layer():
    fisher = {"model.layers.0.a": torch.tensor([1.0, 3.0]), "model.layers.1.a": torch.tensor([10.0]),
              "model.layers.1.b": torch.tensor([0.0, 2.0]), "model.embed_tokens.weight": torch.tensor([99.0])}
    assert fisher_io.layer_importance(fisher, 3) == [2.0, 4.0, 0.0]


def test_rank_probabilities_follow_rank_to_the_minus_alpha():
    # losses 3, 1, 2 -> ranks 1, 3, 2 -> 1, 1/3, 1/2 normalised by 11/6
    assert rank_probabilities([3.0, 1.0, 2.0], alpha=1.0) == pytest.approx([6 / 11, 2 / 11, 3 / 11])
    assert rank_probabilities([3.0, 1.0, 2.0], alpha=0.0) == pytest.approx([1 / 3] * 3)


def _tagged(prefix, n):
    return [Row([i], [i], [0]) for i in range(prefix, prefix + n)]


def test_replay_plan_mixes_exactly_the_ratio_and_keeps_every_new_row_once_per_epoch():
    new, old = _tagged(0, 10), _tagged(100, 5)
    plan = ReplayPlan(new, old, ratio=0.25, micro_batch=2, accumulation=2, processes=1, seed=0)
    assert plan.steps_per_epoch == 4   # 10 new rows, 3 new per step
    seen, replayed = [], 0
    for step in range(40):
        batches, _ = plan.step(step, 0)
        ids = [r.input_ids[0] for b in batches for r in b]
        assert len(ids) == 4
        seen += [i for i in ids if i < 100]
        replayed += sum(i >= 100 for i in ids)
    assert replayed == 40   # a quarter of 160 slots
    assert collections.Counter(seen[:10]) == collections.Counter(range(10))   # the first epoch: each row once
    assert collections.Counter(seen) == collections.Counter({i: 12 for i in range(10)})
    again = ReplayPlan(new, old, ratio=0.25, micro_batch=2, accumulation=2, processes=1, seed=0)
    assert [r.input_ids for b in again.step(17, 0)[0] for r in b] == \
        [r.input_ids for b in plan.step(17, 0)[0] for r in b]   # a pure function of the step


def test_prioritized_replay_draws_by_loss_rank_and_its_state_round_trips():
    old = _tagged(100, 4)
    plan = ReplayPlan(_tagged(0, 8), old, ratio=0.5, micro_batch=4, accumulation=1, processes=1, seed=1,
                      prioritized=True, alpha=1.0, refresh_every=5)
    assert plan.needs_refresh(0) and plan.needs_refresh(3)   # no losses yet
    plan.set_losses([0.1, 5.0, 1.0, 0.5])
    assert not plan.needs_refresh(3) and plan.needs_refresh(5)
    counts = collections.Counter(r.input_ids[0] for s in range(2000) for b in plan.step(s, 0)[0] for r in b
                                 if r.input_ids[0] >= 100)
    total = sum(counts.values())
    expected = rank_probabilities([0.1, 5.0, 1.0, 0.5], 1.0)
    for i, p in enumerate(expected):
        assert counts[100 + i] / total == pytest.approx(p, abs=0.02)
    resumed = ReplayPlan(_tagged(0, 8), old, ratio=0.5, micro_batch=4, accumulation=1, processes=1, seed=1,
                         prioritized=True, alpha=1.0, refresh_every=5)
    resumed.load_state_dict(plan.state_dict())
    assert [r.input_ids for b in resumed.step(7, 0)[0] for r in b] == \
        [r.input_ids for b in plan.step(7, 0)[0] for r in b]


def test_replayed_rows_are_packed_like_the_new_ones_when_packing():
    old = [Row([100 + i] * 3, [1, 1, -100], [0, 1, 2]) for i in range(4)]
    plan = ReplayPlan(_tagged(0, 8), old, ratio=0.5, micro_batch=2, accumulation=1, processes=1, seed=2, pack_to=8)
    batches, _ = plan.step(0, 0)
    packed = [r for b in batches for r in b if r.input_ids[0] >= 100]
    assert len(packed) == 1 and len(packed[0].input_ids) == 6 and plan.last_replayed_samples == 2
    assert packed[0].position_ids == [0, 1, 2, 0, 1, 2] and packed[0].targets == [1, 1, -100, 1, 1, -100]
