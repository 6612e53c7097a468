"""Generation splits R1 answers into reasoning and answer, gives thinking its own budget, keeps reasoning out of
the chat history, and evaluation scores the answer alone unless asked."""

import pytest
import torch

from seektune.config import ModelConfig
from seektune.data.reasoning import THINK_CLOSE
from seektune.evaluate.eval_config import TaskConfig
from seektune.data.examples import Example
from seektune.evaluate.scoring import aggregate, score_example
from seektune.inference.session import ChatSession
from seektune.models.generation import generate_answers
from seektune.models.loading import load_model, load_tokenizer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def r1():
    cfg = ModelConfig(name_or_path="tiny-deepseek-v3", chat_template="deepseek-r1")
    torch.manual_seed(0)
    return load_model(cfg).eval(), load_tokenizer(cfg)


QUESTION = [{"role": "user", "content": "试用期最长多久？"}]


def test_reasoning_that_never_closes_is_reported_open_with_an_empty_answer(r1):
    model, tok = r1
    [out] = generate_answers(model, tok, [QUESTION], max_new_tokens=6)
    assert out.thought and not out.closed and out.answer == ""      # a random model never writes </think>
    assert out.reasoning and out.reasoning_tokens == 6


def test_a_thinking_budget_closes_the_block_and_the_answer_gets_its_own_budget(r1):
    model, tok = r1
    forced = tok(f"\n{THINK_CLOSE}\n\n", add_special_tokens=False)["input_ids"]
    [out] = generate_answers(model, tok, [QUESTION], max_new_tokens=5, max_thinking_tokens=3)
    assert out.closed and out.reasoning_tokens == 3 + forced.index(tok.convert_tokens_to_ids(THINK_CLOSE))
    assert out.answer and THINK_CLOSE not in out.answer and "<think>" not in out.answer
    assert len(tok(out.answer, add_special_tokens=False)["input_ids"]) <= 5 + 1
    # the same prompt twice in one batch: the budget applies per row
    both = generate_answers(model, tok, [QUESTION, QUESTION], max_new_tokens=5, max_thinking_tokens=3)
    assert [b.answer for b in both] == [out.answer, out.answer]


def test_chat_keeps_reasoning_out_of_the_history(r1):
    model, tok = r1
    session = ChatSession(model, tok, max_new_tokens=4, max_thinking_tokens=2)
    answer = session.ask("试用期最长多久？")
    assert session.last_reasoning and session.history[-1] == {"role": "assistant", "content": answer}
    assert session.last_reasoning not in answer


def test_evaluation_scores_the_answer_and_reports_thinking():
    task = TaskConfig(name="law", data="x.jsonl")
    reasoned = TaskConfig(name="law", data="x.jsonl", score_reasoning=True)
    example = Example(0, QUESTION, "最长不超过六个月。", reference_reasoning="劳动合同法第十九条。")
    scores = score_example(task, example, "最长不超过六个月。", "想一想。")
    assert scores["exact_match"] == 1.0 and "reasoning_rougeL" not in scores
    assert score_example(reasoned, example, "最长不超过六个月。", "劳动合同法第十九条。")["reasoning_f1"] == 1.0
    rows = [{"prediction": "最长不超过六个月。", "scores": scores, "reasoning_tokens": 10, "think_closed": True},
            {"prediction": "", "scores": {**scores, "exact_match": 0.0}, "reasoning_tokens": 30,
             "think_closed": False}]
    metrics = aggregate(task, [example, example], rows)
    assert metrics["reasoning_tokens"] == 20 and metrics["think_closed"] == 0.5 and metrics["exact_match"] == 0.5
