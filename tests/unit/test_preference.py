"""Preference pairs: every common format reads into one shape, bad pairs are file:line errors, both answers are
rendered after the exact inference prompt, and each loss equals its formula computed by hand."""

import json
import math

import pytest
import torch

from seektune.objective_config import ObjectiveConfig
from seektune.data.preference import normalise_pair, read_pairs, render_pair, PreferenceRecord
from seektune.data.render import IGNORE, Renderer
from seektune.errors import DataError
from seektune.train.objectives.preference import preference_loss, sequence_logps

Q, GOOD, BAD = "Which days?", "Tuesdays and Thursdays.", "Every day."
FORMATS = {
    "trl standard": {"prompt": Q, "chosen": GOOD, "rejected": BAD},
    "trl conversational": {"prompt": [{"role": "user", "content": Q}],
                           "chosen": [{"role": "assistant", "content": GOOD}],
                           "rejected": [{"role": "assistant", "content": BAD}]},
    "openai messages": {"messages": [{"role": "user", "content": Q}], "chosen": GOOD, "rejected": BAD},
    "llama-factory alpaca": {"instruction": Q, "input": "", "chosen": GOOD, "rejected": BAD},
    "llama-factory sharegpt": {"conversations": [{"from": "human", "value": Q}],
                               "chosen": {"from": "gpt", "value": GOOD}, "rejected": {"from": "gpt", "value": BAD}},
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_preference_format_reads_into_one_shape(fmt):
    prompt, chosen, rejected = normalise_pair(FORMATS[fmt], system_prompt="Be brief.")
    assert prompt == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": Q}]
    assert chosen == {"role": "assistant", "content": GOOD} and rejected == {"role": "assistant", "content": BAD}


@pytest.mark.parametrize("record, error", [
    ({"prompt": Q, "rejected": BAD}, "missing field 'chosen'"),
    ({"prompt": Q, "chosen": GOOD, "rejected": GOOD}, "identical"),
    ({"prompt": Q, "chosen": {"role": "user", "content": GOOD}, "rejected": BAD}, "assistant answer"),
    ({"messages": [{"role": "user", "content": Q}, {"role": "assistant", "content": "x"}], "chosen": GOOD,
      "rejected": BAD}, "expected 'user'"),
    ({"chosen": GOOD, "rejected": BAD}, "needs its prompt"),
    ({"prompt": Q, "chosen": "  ", "rejected": BAD}, "chosen is empty"),
])
def test_bad_pairs_are_file_line_errors(tmp_path, record, error):
    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps(FORMATS["trl standard"]) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DataError, match=f"prefs.jsonl:2: .*{error}"):
        read_pairs(path)
    assert len(read_pairs(path, on_error="skip")) == 1


def test_both_answers_follow_the_exact_inference_prompt(tiny_tokenizer):
    renderer = Renderer(tiny_tokenizer, 256, train_on="last_assistant")
    prompt = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
              {"role": "user", "content": Q}]
    row = render_pair(renderer, PreferenceRecord("f:1", prompt, {"role": "assistant", "content": GOOD},
                                                 {"role": "assistant", "content": BAD}))
    inference_prompt = renderer.prompt_ids(prompt)
    for side, answer in ((row.chosen, GOOD), (row.rejected, BAD)):
        assert side.input_ids[:len(inference_prompt)] == inference_prompt
        supervised = [t for t in side.targets if t != IGNORE]
        assert tiny_tokenizer.decode(supervised) == answer + "<|im_end|>"   # not "Hello." of the earlier turn
    assert row.supervised == 1


def _t(*values):
    return torch.tensor(values, dtype=torch.float64)


def test_each_loss_equals_its_formula():
    chosen, rejected, ref_c, ref_r = _t(-4.0, -9.0), _t(-6.0, -5.0), _t(-5.0, -7.0), _t(-5.5, -6.0)
    n_c, n_r = _t(4, 6), _t(3, 5)
    beta = 0.1
    margins = [(-4 + 5) - (-6 + 5.5), (-9 + 7) - (-5 + 6)]
    expect = {
        "sigmoid": [math.log1p(math.exp(-beta * m)) for m in margins],
        "hinge": [max(0.0, 1 - beta * m) for m in margins],
        "ipo": [((c - rc) / nc - (r - rr) / nr - 1 / (2 * beta)) ** 2
                for c, r, rc, rr, nc, nr in zip((-4, -9), (-6, -5), (-5, -7), (-5.5, -6), (4, 6), (3, 5))],
        "simpo": [math.log1p(math.exp(-(beta * (c / nc - r / nr) - 0.5)))
                  for c, r, nc, nr in zip((-4, -9), (-6, -5), (4, 6), (3, 5))],
    }
    for loss, values in expect.items():
        got, _, _ = preference_loss(ObjectiveConfig(name="dpo", loss=loss, beta=beta), chosen, rejected, n_c, n_r, ref_c, ref_r)
        assert got.tolist() == pytest.approx(values), loss
    got, chosen_reward, rejected_reward = preference_loss(ObjectiveConfig(name="dpo", loss="orpo", beta=beta), chosen, rejected,
                                                          n_c, n_r)
    mc, mr = -4 / 4, -6 / 3
    log_odds = (mc - mr) - (math.log1p(-math.exp(mc)) - math.log1p(-math.exp(mr)))
    assert got[0].item() == pytest.approx(-mc + beta * math.log1p(math.exp(-log_odds)))
    assert chosen_reward[0].item() == pytest.approx(beta * mc)
    got, _, _ = preference_loss(ObjectiveConfig(name="dpo", sft_weight=0.5), chosen, rejected, n_c, n_r, ref_c, ref_r)
    assert got.tolist() == pytest.approx([s + 0.5 * (-c / n) for s, c, n in zip(expect["sigmoid"], (-4, -9), (4, 6))])
    _, chosen_reward, rejected_reward = preference_loss(ObjectiveConfig(name="dpo"), chosen, rejected, n_c, n_r, ref_c, ref_r)
    assert (chosen_reward - rejected_reward).tolist() == pytest.approx([beta * m for m in margins])


def test_sequence_log_probs_equal_the_full_forward(tiny_llama_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    ids = torch.tensor([[5, 17, 42, 8, 99, 3], [7, 7, 9, 11, 2, 2]])
    targets = torch.tensor([[IGNORE, IGNORE, 8, 99, 3, IGNORE], [IGNORE, 9, 11, IGNORE, IGNORE, IGNORE]])
    mask = torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]])
    positions = torch.arange(6).expand(2, 6)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits.log_softmax(-1)
        expected = [sum(logits[r, t, targets[r, t]].item() for t in range(6) if targets[r, t] != IGNORE)
                    for r in range(2)]
        for selective in (True, False):
            logps, counts = sequence_logps(model, ids, targets, mask, positions, selective)
            assert logps.tolist() == pytest.approx(expected, abs=1e-5) and counts.tolist() == [3, 2]
