"""Per-example scores, per-task aggregates, and the primary metric of each task type."""

from __future__ import annotations

from seektune.metrics import semantic
from seektune.metrics.citation import citation_scores
from seektune.evaluate.classification import LabelRule, classification_scores
from seektune.evaluate.eval_config import TaskConfig
from seektune.data.examples import Example
from seektune.metrics.text import bleu, exact_match, key_fact_match, rouge, token_f1


def score_example(task: TaskConfig, example: Example, prediction: str, reasoning: str | None = None) -> dict:
    """Scores of one answer (the final answer: a reasoning model's text after </think>); every value is 0-1 and
    higher is better. With `score_reasoning`, the reasoning is scored against the reference's too."""
    scores = {"exact_match": exact_match(prediction, example.reference), "f1": token_f1(prediction, example.reference),
              **rouge(prediction, example.reference)}
    if example.key_fact:
        scores["key_fact"] = key_fact_match(prediction, example.key_fact)
    if semantic.available():   # the packaged sentence-embedding model is installed
        scores["semantic_similarity"] = semantic.semantic_similarity(prediction, example.reference)
    if task.type == "citation":
        cited = citation_scores(prediction, example.reference)
        if cited is not None:
            scores.update(cited)
    if task.score_reasoning and example.reference_reasoning:
        thought = rouge(reasoning or "", example.reference_reasoning)
        scores.update({f"reasoning_{k}": v for k, v in thought.items()},
                      reasoning_f1=token_f1(reasoning or "", example.reference_reasoning))
    if task.type == "classification":
        rule = LabelRule(task.labels, task.label_pattern, task.label_aliases)
        scores["label"] = rule.extract(prediction)
        scores["correct"] = float(scores["label"] == (example.label or example.reference).strip())
    return scores


def primary_metric(task: TaskConfig, has_key_fact: bool) -> str:
    if task.type == "classification":
        return "accuracy"
    if task.type == "citation":
        return "citation_exact"
    if task.type == "perplexity":
        return "perplexity"
    if task.type == "retrieval":
        return "image_to_text_recall@1"
    return "key_fact" if has_key_fact else "f1"


def aggregate(task: TaskConfig, examples: list[Example], rows: list[dict]) -> dict:
    """Task-level metrics from per-example rows (same order as examples)."""
    metrics: dict = {}
    numeric = list(dict.fromkeys(k for r in rows for k, v in r["scores"].items() if isinstance(v, float)))
    for name in numeric:
        values = [r["scores"][name] for r in rows if name in r["scores"]]
        if values:
            metrics[name] = sum(values) / len(values)
    metrics["bleu"] = bleu([r["prediction"] for r in rows], [e.reference for e in examples])
    thinking = [r for r in rows if "think_closed" in r]
    if thinking:   # a reasoning model: how long it thought, and how often it finished thinking
        metrics["reasoning_tokens"] = sum(r["reasoning_tokens"] for r in thinking) / len(thinking)
        metrics["think_closed"] = sum(bool(r["think_closed"]) for r in thinking) / len(thinking)
    if task.type == "classification":
        predicted = [r["scores"]["label"] for r in rows]
        reference = [(e.label or e.reference).strip() for e in examples]
        report = classification_scores(predicted, reference, task.labels, task.high_risk)
        metrics.update({k: v for k, v in report.items() if k != "per_class"})
        metrics["per_class"] = report["per_class"]
        metrics.pop("correct", None)
    metrics["examples"] = len(rows)
    return metrics


def lower_is_better(metric: str) -> bool:
    return metric in ("perplexity", "nll_per_token", "ttft_ms", "ms_per_token", "image_to_text_mean_rank")
