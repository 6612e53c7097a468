"""Term-weighted loss: the weights land on exactly the tokens that spell a listed term, in the answer only."""

import pytest

from seektune.data.batching import collate, unpacked
from seektune.data.render import IGNORE, Renderer
from seektune.data.terms import TermMatcher, token_weights
from seektune.errors import DataError


def test_matching_respects_word_edges_for_latin_and_not_for_cjk():
    m = TermMatcher(["ACE inhibitor", "ace", "高血压"])
    text = "Face it: an ACE inhibitor treats 高血压患者; ace."
    found = [text[a:b] for a, b in m.spans(text)]
    assert found == ["ACE inhibitor", "高血压", "ace"]  # not the "ace" inside "Face"; the longer term wins


def test_token_weights_cover_every_overlapping_token():
    offsets = [(0, 3), (3, 8), (8, 12), (12, 13)]
    assert token_weights(offsets, [(4, 10)], 2.0) == [1.0, 2.0, 2.0, 1.0]


def test_term_file_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        TermMatcher.from_file(tmp_path / "none.txt")
    empty = tmp_path / "terms.txt"
    empty.write_text("# only a comment\n\n")
    with pytest.raises(DataError, match="terms.txt: no terms"):
        TermMatcher.from_file(empty)


def _weighted_targets(tokenizer, answer, terms, weight=1.5):
    renderer = Renderer(tokenizer, 512, terms=TermMatcher(terms), term_weight=weight)
    sample = renderer.conversation([{"role": "user", "content": "What is fasting blood work?"},
                                    {"role": "assistant", "content": answer}])[0]
    return sample, [(t, w) for t, w in zip(sample.targets, sample.weights) if w != 1.0]


def test_weights_land_on_the_multi_token_term_in_the_answer_only(tiny_tokenizer):
    answer = "Patients need fasting blood work for ten hours."
    sample, weighted = _weighted_targets(tiny_tokenizer, answer, ["fasting blood"])
    term_ids = tiny_tokenizer(" fasting blood", add_special_tokens=False)["input_ids"]
    assert len(term_ids) > 1  # the term is split across several tokens
    assert [t for t, _ in weighted] == term_ids  # exactly the term's tokens, as targets
    assert all(w == 1.5 for _, w in weighted)
    # the same words in the prompt ("fasting blood work?") are context, never weighted
    assert all(t != IGNORE for t, _ in weighted)
    assert sum(w != 1.0 for w in sample.weights) == len(term_ids)


def test_chinese_terms_with_the_deepseek_tokenizer(deepseek_tok):
    answer = "高血压患者应低盐饮食，并监测血压。"
    _, weighted = _weighted_targets(deepseek_tok, answer, ["高血压", "低盐饮食"], weight=2.0)
    pieces = [deepseek_tok.decode([t]) for t, _ in weighted]
    joined = "".join(pieces)
    assert "高血压" in joined and "低盐饮食" in joined and all(w == 2.0 for _, w in weighted)
    assert all(set(p) & set("高血压低盐饮食") for p in pieces)  # every weighted token carries part of a term
    assert "监测" not in joined and "并" not in joined


def test_collate_carries_weights_and_the_loss_uses_them(tiny_tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from seektune.train.objectives import CausalLMObjective

    sample, _ = _weighted_targets(tiny_tokenizer, "Patients need fasting blood work.", ["fasting blood"], 3.0)
    batch = collate(unpacked([sample]), 0, packed=False)
    assert batch["weights"].shape == batch["input_ids"].shape
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    objective = CausalLMObjective(model)
    weighted, n = objective(**batch)
    plain, n2 = objective(**{k: v for k, v in batch.items() if k != "weights"})
    per_token = torch.nn.functional.cross_entropy(
        model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits[0], batch["targets"][0],
        reduction="none", ignore_index=IGNORE)
    expected = (per_token * batch["weights"][0]).sum()
    assert n == n2 and weighted > plain
    torch.testing.assert_close(weighted, expected, rtol=1e-5, atol=1e-5)
