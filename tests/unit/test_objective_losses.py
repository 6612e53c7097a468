"""The objective section validates strictly; the reward-model and GRPO losses, group advantages and reward
functions equal their formulas computed by hand."""

import math

import pytest
import torch

from seektune.config import load
from seektune.data.examples import Example
from seektune.errors import ConfigError
from seektune.objective_config import ObjectiveConfig
from seektune.train.objectives.grpo import group_advantages, grpo_token_loss
from seektune.train.objectives.reward import bradley_terry_loss
from seektune.train.rewards import RewardSet, Sampled


def _load(tmp_path, *overrides):
    data = tmp_path / "d.jsonl"
    data.write_text("")
    return load(None, [f"data.train=[{data}]", *overrides])


@pytest.mark.parametrize("overrides, message", [
    (["objective.name=dpo", "objective.group_size=8"], "objective.group_size is a setting of grpo, not dpo"),
    (["objective.loss=ipo"], "objective.loss is a setting of dpo, not causal_lm"),
    (["objective.name=grpo", "objective.rewards=[key_facts]"], "unknown reward 'key_facts'"),
    (["objective.name=grpo", "objective.rewards=['regex:(']"], "not a valid regular expression"),
    (["objective.name=grpo", "objective.rewards=[key_fact,format]", "objective.reward_weights=[1]"],
     "1 weights for 2 rewards"),
    (["objective.name=dpo", "method.name=full"], "use a reference-free loss"),
    (["objective.name=grpo", "method.name=freeze"], "objective.beta=0"),
    (["objective.name=reward", "method.name=prompt", "data.packing=false"], "does not support method prompt"),
    (["objective.nmae=dpo"], "did you mean 'name'"),
    (["objective.name=reward", "method.name=freeze"], "trains a new score head"),
    (["objective.name=kd"], "needs objective.teacher"),
    (["objective.name=dpo", "objective.teacher=runs/x"], "objective.teacher is a setting of kd, not dpo"),
    (["objective.name=dpo", "objective.beta=0"], "must be > 0 for dpo"),
])
def test_bad_objective_settings_name_the_key(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=re_escape(message)):
        _load(tmp_path, *overrides)


def re_escape(text):
    import re

    return re.escape(text)


def test_defaults_per_objective_and_a_saved_config_reloads(tmp_path):
    assert _load(tmp_path, "objective.name=dpo").objective.beta == 0.1
    assert _load(tmp_path, "objective.name=grpo").objective.beta == 0.04
    assert _load(tmp_path, "objective.name=grpo", "method.name=full", "objective.beta=0").objective.beta == 0
    # every key of another objective is in a saved config at its default: that is not a misplaced setting
    saved = _load(tmp_path, "objective.name=dpo").objective.model_dump()
    assert ObjectiveConfig.model_validate(saved).beta == 0.1
    assert ObjectiveConfig.model_validate(ObjectiveConfig().model_dump()).name == "causal_lm"


def test_bradley_terry_loss_by_hand():
    chosen, rejected = torch.tensor([1.0, -0.5]), torch.tensor([0.0, 0.5])
    assert bradley_terry_loss(chosen, rejected).tolist() == pytest.approx(
        [math.log1p(math.exp(-1.0)), math.log1p(math.exp(1.0))])
    assert bradley_terry_loss(chosen, rejected, 0.1).tolist() == pytest.approx(
        [math.log1p(math.exp(-1.0)) + 0.1 * 1.0, math.log1p(math.exp(1.0)) + 0.0])


def test_group_advantages_normalise_within_each_group():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0], dtype=torch.float64)
    adv = group_advantages(rewards, 4)
    std = math.sqrt(sum((r - 0.5) ** 2 for r in (1, 0, 0, 1)) / 3)   # unbiased, as torch.std
    assert adv[:4].tolist() == pytest.approx([0.5 / (std + 1e-4), -0.5 / (std + 1e-4)] * 1 +
                                             [-0.5 / (std + 1e-4), 0.5 / (std + 1e-4)])
    assert adv[4:].tolist() == [0.0] * 4   # a group that agrees teaches nothing


def test_grpo_token_loss_by_hand():
    logps = torch.tensor([-1.0, -2.0, -0.5], requires_grad=True)
    old = torch.tensor([-1.0, -2.5, -0.5])
    adv = torch.tensor([1.0, 1.0, -2.0])
    ref = torch.tensor([-1.2, -2.0, -0.4])
    loss, kl = grpo_token_loss(logps, old, adv, ref, beta=0.04, epsilon=0.2)
    ratios = [1.0, math.exp(0.5), 1.0]
    clipped = [1.0, 1.2, 1.0]
    expect_kl = [math.exp(d) - d - 1 for d in (-0.2, 0.0, 0.1)]
    expect = [-min(r * a, c * a) + 0.04 * k for r, c, a, k in zip(ratios, clipped, adv.tolist(), expect_kl)]
    assert loss.tolist() == pytest.approx(expect, abs=1e-6)
    assert kl.tolist() == pytest.approx(expect_kl, abs=1e-6)
    # at ratio 1 the gradient is the policy gradient: -A (plus the KL's pull)
    (loss[0] + loss[2]).backward()
    assert logps.grad[0].item() == pytest.approx(-1.0 + 0.04 * (1 - math.exp(-0.2)))
    assert logps.grad[1].item() == 0.0   # clipped above 1 + epsilon with a positive advantage: no gradient


def _sampled(answer, finished=True, closed=True, **example):
    fields = {"index": 0, "messages": [], "reference": "", **example}
    return Sampled(answer, None, closed, finished, Example(**fields))


def test_reward_functions_and_their_weighted_sum():
    cfg = ObjectiveConfig(name="grpo", rewards=["key_fact", "format", "length", "regex:^Code", "citation"],
                          reward_weights=[1.0, 0.5, 1.0, 2.0, 1.0], max_length_chars=12)
    reference = "依据《中华人民共和国劳动合同法》第十九条，试用期最长不超过六个月。"
    samples = [
        _sampled("Code Amber.", key_fact="Code Amber", reference=reference),
        _sampled("It is code amber, I think, maybe", finished=False, key_fact="Code Amber", reference=reference),
        _sampled("《劳动合同法》第十九条", key_fact="六个月", reference=reference),
        _sampled("《劳动合同法》第二十条", closed=False, key_fact="六个月", reference=reference),
    ]
    total, means = RewardSet(cfg)(samples)
    rows = [  # key_fact, format, length, regex, citation
        (1, 1, 1, 1, 0),
        (1, 0, 12 / 32, 0, 0),
        (0, 1, 1, 0, 1),
        (0, 0, 1, 0, 0.5),
    ]
    weights = [1.0, 0.5, 1.0, 2.0, 1.0]
    assert total.tolist() == pytest.approx([sum(w * v for w, v in zip(weights, r)) for r in rows])
    assert means["key_fact"] == 0.5 and means["citation"] == pytest.approx(1.5 / 4)


def test_key_fact_reward_names_the_record_without_one():
    from seektune.errors import DataError

    with pytest.raises(DataError, match="prompts.jsonl:3: the key_fact reward needs"):
        RewardSet(ObjectiveConfig(name="grpo"))([_sampled("x", where="prompts.jsonl:3")])


def test_grpo_supervises_each_answer_through_its_first_end_of_turn_token(tiny_llama_dir, tiny_tokenizer,
                                                                         monkeypatch):
    """Targets are the sampled tokens up to and including the first end-of-turn token: never the prompt, never
    what was generated after the turn ended; positions skip the left padding as generate's did."""
    from transformers import AutoModelForCausalLM

    import seektune.train.objectives.grpo as grpo
    from seektune.data.prompts import PromptRow, collate_prompts
    from seektune.data.render import IGNORE

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    cfg = ObjectiveConfig(name="grpo", group_size=2, rewards=["length"], beta=0.0)
    objective = grpo.GRPOObjective(model, cfg, tiny_tokenizer, RewardSet(cfg))
    eot = tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    completions = torch.tensor([[5, 6, eot, 7], [8, eot, 9, 9], [5, 5, 5, 5], [eot, 3, 3, 3]])
    monkeypatch.setattr(objective, "_sample", lambda prompts, mask: completions)
    seen = {}

    def capture(model, ids, targets, mask, positions, selective):
        seen.update(ids=ids, targets=targets, mask=mask, positions=positions)
        return torch.zeros(int((targets != IGNORE).sum()), requires_grad=True)

    monkeypatch.setattr(grpo, "token_logps", capture)
    example = Example(0, [], "")
    batch = collate_prompts([PromptRow([11, 12, 13], example, 2), PromptRow([14], example, 2)],
                            tiny_tokenizer.pad_token_id)
    loss, units = objective(**batch)
    assert units.item() == 4
    width = 3
    targets = seen["targets"][:, width - 1:-1]
    expected = [[5, 6, eot, IGNORE], [8, eot, IGNORE, IGNORE], [5, 5, 5, 5], [eot, IGNORE, IGNORE, IGNORE]]
    assert targets.tolist() == expected
    assert (seen["targets"][:, :width - 1] == IGNORE).all()
    # the second prompt is left-padded by two: its positions start at 0 on its first real token
    assert seen["positions"][2].tolist()[:width + 2] == [0, 0, 0, 1, 2]
    assert seen["mask"][1].tolist() == [1, 1, 1, 1, 1, 0, 0]
    metrics = objective.pop_metrics()
    assert metrics["finished"] == 0.75 and metrics["completion_length"] == (3 + 2 + 4 + 1) / 4


@pytest.mark.parametrize("kind, beta", [("forward_kl", 0.0), ("reverse_kl", 1.0), ("jsd", 0.5), ("jsd", 0.2)])
def test_distillation_divergences_equal_trl_gkd(kind, beta):
    """TRL's GKDTrainer.generalized_jsd_loss on the same logits: beta 0 is forward KL, 1 reverse KL."""
    from trl.experimental.gkd import GKDTrainer

    from seektune.train.objectives.distill import divergence

    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    labels = torch.tensor([[-100, 3, 4, -100, 1], [2, -100, -100, 5, 6]])
    theirs = GKDTrainer.generalized_jsd_loss(student, teacher, labels, beta=beta, temperature=2.0)
    mask = labels != -100
    ours = divergence(student[mask], teacher[mask], kind, temperature=2.0, jsd_beta=beta if kind == "jsd" else 0.5)
    assert ours.mean().item() == pytest.approx(theirs.item(), rel=1e-5)
    assert (ours >= -1e-6).all()
