"""Labels from generated answers, and classification metrics: accuracy, per-class precision/recall/F1,
macro F1, Cohen's kappa (agreement beyond chance, as used for clinical raters), and recall on a high-risk
class (missing a risky case costs most)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

UNPARSED = "<unparsed>"


@dataclass
class LabelRule:
    """How a label is read from an answer: the first configured label mentioned (case-insensitive, earliest
    position wins), or the first group of a regex. Answers matching nothing become '<unparsed>' (scored wrong)."""

    labels: list[str]
    pattern: str | None = None
    aliases: dict[str, str] | None = None  # e.g. {"高风险": "high"}

    def extract(self, answer: str) -> str:
        if self.pattern:
            m = re.search(self.pattern, answer, flags=re.I | re.S)
            if not m:
                return UNPARSED
            answer = m.group(1) if m.groups() else m.group(0)
        names = {label: label for label in self.labels} | (self.aliases or {})
        lowered = answer.lower()
        found = [(lowered.find(name.lower()), -len(name), target) for name, target in names.items()
                 if name.lower() in lowered]
        return min(found)[2] if found else UNPARSED


def cohen_kappa(predicted: list[str], reference: list[str]) -> float:
    """kappa = (p_o - p_e) / (1 - p_e); 1.0 when both raters use one identical label throughout."""
    n = len(reference)
    if n == 0:
        return 0.0
    observed = sum(p == r for p, r in zip(predicted, reference)) / n
    pc, rc = Counter(predicted), Counter(reference)
    expected = sum(pc[k] * rc[k] for k in set(pc) | set(rc)) / (n * n)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


def classification_scores(predicted: list[str], reference: list[str], labels: list[str],
                          high_risk: str | None = None) -> dict:
    per_class = {}
    for label in labels:
        tp = sum(p == label and r == label for p, r in zip(predicted, reference))
        fp = sum(p == label and r != label for p, r in zip(predicted, reference))
        fn = sum(p != label and r == label for p, r in zip(predicted, reference))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    out = {"accuracy": sum(p == r for p, r in zip(predicted, reference)) / max(1, len(reference)),
           "macro_f1": sum(c["f1"] for c in per_class.values()) / max(1, len(per_class)),
           "kappa": cohen_kappa(predicted, reference), "per_class": per_class,
           "unparsed": sum(p == UNPARSED for p in predicted)}
    if high_risk is not None:
        out["high_risk_recall"] = per_class.get(high_risk, {}).get("recall", 0.0)
    return out
