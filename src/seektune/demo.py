"""Before/after comparison on held-out questions: the base model's answer next to the tuned one, scored.

Held-out file: JSONL with {"question", "reference", "key_fact"} per line, paraphrases of training questions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from seektune.config import Config
from seektune.errors import DataError
from seektune.evaluate.qa import key_fact_match, rouge_l
from seektune.models.generation import generate
from seektune.models.loading import load_for_inference


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


def read_heldout(path: Path) -> list[dict]:
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            items.append({k: item[k] for k in ("question", "reference", "key_fact")})
        except (json.JSONDecodeError, KeyError) as exc:
            raise DataError(f"{path}:{n}: need JSON with question, reference, key_fact ({exc})") from None
    return items


def answer_questions(model_ref: str, questions: list[str], system_prompt: str | None,
                     max_new_tokens: int) -> list[str]:
    model, tokenizer = load_for_inference(model_ref)
    out = []
    for q in questions:
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
            {"role": "user", "content": q}]
        out.append(generate(model, tokenizer, messages, max_new_tokens=max_new_tokens))
    return out


def compare(cfg: Config, heldout: Path, max_new_tokens: int = 48) -> list[Scored]:
    items = read_heldout(heldout)
    questions = [i["question"] for i in items]
    base = answer_questions(cfg.model.name_or_path, questions, cfg.data.system_prompt, max_new_tokens)
    tuned = answer_questions(str(cfg.run_dir), questions, cfg.data.system_prompt, max_new_tokens)
    return [Scored(i["question"], i["key_fact"], b, t, key_fact_match(b, i["key_fact"]),
                   key_fact_match(t, i["key_fact"]), rouge_l(b, i["reference"]), rouge_l(t, i["reference"]))
            for i, b, t in zip(items, base, tuned)]


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
