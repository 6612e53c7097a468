"""Answer scores used by the demo: key-fact exact match and ROUGE-L.

Key-fact match: after lower-casing and collapsing whitespace, the reference key fact occurs in the answer.
ROUGE-L: F-measure of the longest common subsequence, `rouge-score` with its default tokeniser (lower-cased
ASCII alphanumeric tokens, Porter stemming on); for Chinese text we score characters (space-separated
before scoring), since that tokeniser drops CJK characters.
"""

from __future__ import annotations

import re

from rouge_score import rouge_scorer, tokenizers

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def key_fact_match(answer: str, key_fact: str) -> float:
    return float(_normalise(key_fact) in _normalise(answer))


class _CharTokenizer(tokenizers.Tokenizer):
    def tokenize(self, text: str) -> list[str]:
        return [c for c in text.lower() if not c.isspace()]


def rouge_l(answer: str, reference: str) -> float:
    if _CJK.search(reference):
        scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_CharTokenizer())
    else:
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return scorer.score(reference, answer)["rougeL"].fmeasure
