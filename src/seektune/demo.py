"""Before/after comparison on held-out questions: the base model's answer next to the tuned one, scored with
evaluation's own metrics (key-fact match and ROUGE-L, seektune.metrics.text).

Held-out file: JSONL with {"question", "reference", "key_fact"} per line, paraphrases of training questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seektune.artifacts import load_for_inference
from seektune.atomic import write_json, write_text
from seektune.config import Config
from seektune.errors import DataError
from seektune.data.examples import Example, load_examples
from seektune.metrics.text import key_fact_match, rouge
from seektune.models.generation import generate


@dataclass
class Scored:
    question: str
    key_fact: str
    base: str
    tuned: str
    base_match: float
    tuned_match: float
    base_rouge: float
    tuned_rouge: float


def read_heldout(path: Path, system_prompt: str | None = None) -> list[Example]:
    """The held-out questions; each needs a reference and a key fact (errors name file:line)."""
    examples = load_examples(path, system_prompt)
    missing = next((e for e in examples if not e.key_fact), None)
    if missing is not None:
        raise DataError(f"{missing.where}: no key_fact (each held-out record needs question, reference, key_fact)")
    return examples


def answer_questions(model_ref: str, prompts: list[list[dict]], max_new_tokens: int) -> list[str]:
    model, tokenizer = load_for_inference(model_ref)
    return [generate(model, tokenizer, messages, max_new_tokens=max_new_tokens).answer for messages in prompts]


def compare(cfg: Config, heldout: Path, max_new_tokens: int = 48) -> list[Scored]:
    items = read_heldout(heldout, cfg.data.system_prompt)
    prompts = [e.messages for e in items]
    base = answer_questions(cfg.model.name_or_path, prompts, max_new_tokens)
    tuned = answer_questions(str(cfg.run_dir), prompts, max_new_tokens)
    return [Scored(e.question, e.key_fact, b, t, key_fact_match(b, e.key_fact), key_fact_match(t, e.key_fact),
                   rouge(b, e.reference)["rougeL"], rouge(t, e.reference)["rougeL"])
            for e, b, t in zip(items, base, tuned)]


def report(rows: list[Scored]) -> tuple[str, dict]:
    n = max(len(rows), 1)
    scores = {
        "key_fact_exact_match": {"base": sum(r.base_match for r in rows) / n,
                                 "tuned": sum(r.tuned_match for r in rows) / n},
        "rouge_l_f": {"base": sum(r.base_rouge for r in rows) / n, "tuned": sum(r.tuned_rouge for r in rows) / n},
    }
    lines = ["# Demo: base vs tuned on held-out paraphrased questions", ""]
    for r in rows:
        lines += [f"**Q:** {r.question}  (key fact: `{r.key_fact}`)", "",
                  f"- base  [{'hit' if r.base_match else 'miss'}]: {r.base}",
                  f"- tuned [{'hit' if r.tuned_match else 'miss'}]: {r.tuned}", ""]
    lines += ["| score | base | tuned |", "|---|---|---|"]
    for name, s in scores.items():
        lines.append(f"| {name} | {s['base']:.3f} | {s['tuned']:.3f} |")
    return "\n".join(lines), scores


def write_report(cfg: Config, rows: list[Scored]) -> tuple[str, Path]:
    """demo_report.md and demo_scores.json in the run directory; returns (the report text, its path)."""
    text, scores = report(rows)
    path = cfg.run_dir / "demo_report.md"
    write_text(path, text + "\n")
    write_json(cfg.run_dir / "demo_scores.json", scores)
    return text, path
