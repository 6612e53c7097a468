"""Generation metrics with stated, standard definitions, so numbers compare with other tools (the demo and
`seektune eval` score with these same functions).

- Key-fact match: after lower-casing and collapsing whitespace, the reference key fact occurs in the answer.
- Exact match / token F1: SQuAD v1.1 normalisation (lower-case, drop punctuation and the articles a/an/the,
  collapse whitespace). Text containing Chinese is scored per character (CMRC 2018 style: each CJK character
  is a token, runs of Latin letters/digits stay one token), since Chinese has no spaces.
- BLEU: sacrebleu corpus BLEU (4-gram, exponential smoothing off, sacrebleu defaults) with its `13a`
  tokeniser, or its `zh` tokeniser when the references contain Chinese (each CJK character a token).
  Reported 0-100 like sacrebleu.
- ROUGE-1/2/L: `rouge-score` F-measure, averaged over examples. English: its default tokeniser with Porter
  stemming. Chinese: per character (as EM/F1; not jieba words, unlike LLaMA-Factory), since character ROUGE
  does not depend on a segmenter's dictionary. Reported 0-1.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections import Counter

from seektune.text import HAN, has_cjk

_ZH_TOKEN = re.compile(f"[{HAN}]|[a-z0-9]+")
_PUNCT = set(string.punctuation) | {c for c in "，。！？；：、“”‘’（）《》【】—…·「」『』〈〉～"}


def key_fact_match(answer: str, key_fact: str) -> float:
    """The key fact occurs in the answer, after lower-casing and collapsing whitespace."""
    return float(" ".join(key_fact.lower().split()) in " ".join(answer.lower().split()))


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation (plus NFKC, so full-width forms equal their ASCII)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch not in _PUNCT and unicodedata.category(ch)[0] != "P")
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def answer_tokens(text: str) -> list[str]:
    norm = normalize_answer(text)
    return _ZH_TOKEN.findall(norm) if has_cjk(norm) else norm.split()


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = answer_tokens(prediction), answer_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def bleu(predictions: list[str], references: list[str]) -> float:
    """Corpus BLEU (0-100)."""
    import sacrebleu  # imported on use, like rouge-score: training processes that never score start faster

    tokenize = "zh" if any(has_cjk(r) for r in references) else "13a"
    return sacrebleu.corpus_bleu(predictions, [references], tokenize=tokenize).score


class _CharTokens:
    """Chinese ROUGE tokens: one per Han character, whole words/numbers otherwise (rouge-score's Tokenizer API)."""

    def tokenize(self, text: str) -> list[str]:
        return _ZH_TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


@functools.cache
def _scorer(language: str):
    """Built on first use: rouge-score logs through absl, whose first message configures the root logger
    (WARNING level), which would silence seektune's own INFO lines if it happened at import time; and it
    imports nltk (2 s), which processes that only train should not pay for."""
    from rouge_score import rouge_scorer

    if language == "zh":
        return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_CharTokens())
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge(prediction: str, reference: str) -> dict[str, float]:
    scorer = _scorer("zh" if has_cjk(reference) else "en")
    scores = scorer.score(reference, prediction)
    return {name: float(scores[name].fmeasure) for name in ("rouge1", "rouge2", "rougeL")}  # 0 comes back as int
