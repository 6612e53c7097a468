"""What is in a dataset: counts, fields, empty values, language mix, token lengths, duplicates, and for
Chinese text jieba word statistics. Writes a markdown summary and a token-length histogram PNG."""

from __future__ import annotations

import logging
import re
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from seektune.data.pipeline.dedup import KeyIndex, exact_key
from seektune.data.pipeline.fields import joined, kind, texts
from seektune.text import HAN

_CJK = re.compile(f"[{HAN}]")
_LATIN = re.compile(r"[A-Za-z]")


def language(text: str) -> str:
    """zh / en / mixed / other by script share (CJK characters vs Latin letters)."""
    cjk, latin = len(_CJK.findall(text)), len(_LATIN.findall(text))
    if cjk + latin == 0:
        return "other"
    share = cjk / (cjk + latin / 4)  # ~4 Latin letters carry what one Chinese character does
    return "zh" if share > 0.8 else "en" if share < 0.2 else "mixed"


@dataclass
class Inspection:
    records: int = 0
    formats: Counter = field(default_factory=Counter)
    fields: Counter = field(default_factory=Counter)
    empty_text: Counter = field(default_factory=Counter)
    languages: Counter = field(default_factory=Counter)
    exact_duplicates: int = 0
    token_lengths: array = field(default_factory=lambda: array("I"))
    char_lengths: array = field(default_factory=lambda: array("I"))
    zh_records: int = 0
    zh_words: int = 0
    zh_vocabulary: set = field(default_factory=set)

    def add(self, record: dict, tokenizer=None) -> None:
        self.records += 1
        fmt = kind(record)
        self.formats[fmt] += 1
        self.fields.update(record.keys())
        for i, t in enumerate(texts(record)):
            if not t.strip():
                self.empty_text[f"{fmt} text field {i + 1}"] += 1
        text = joined(record)
        self.char_lengths.append(len(text))
        lang = language(text)
        self.languages[lang] += 1
        if self._seen.contains_any(key := exact_key(text)):
            self.exact_duplicates += 1
        else:
            self._seen.add(key)
        if tokenizer is not None:
            self.token_lengths.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
        if lang in ("zh", "mixed"):
            import jieba

            jieba.setLogLevel(logging.WARNING)
            words = [w for w in jieba.lcut(text) if w.strip()]
            self.zh_records += 1
            self.zh_words += len(words)
            self.zh_vocabulary.update(words)

    def __post_init__(self) -> None:
        self._seen = KeyIndex()

    def summary(self) -> dict:
        def stats(values: array) -> dict:
            if not values:
                return {}
            ordered = sorted(values)
            pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
            return {"min": ordered[0], "mean": round(sum(ordered) / len(ordered), 1), "p50": pick(0.5),
                    "p90": pick(0.9), "p99": pick(0.99), "max": ordered[-1]}

        return {
            "records": self.records, "formats": dict(self.formats), "fields": dict(self.fields.most_common()),
            "missing_fields": {k: self.records - v for k, v in self.fields.items() if v < self.records},
            "empty_text": dict(self.empty_text), "languages": dict(self.languages),
            "exact_duplicates": self.exact_duplicates,
            "duplicate_rate": round(self.exact_duplicates / self.records, 4) if self.records else 0.0,
            "chars": stats(self.char_lengths), "tokens": stats(self.token_lengths),
            "zh_words_per_record": round(self.zh_words / self.zh_records, 1) if self.zh_records else None,
            "zh_vocabulary": len(self.zh_vocabulary) if self.zh_records else None,
        }


def histogram(lengths: array, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(list(lengths), bins=50, color="#3b6ea5")
    ax.set_xlabel("tokens per record")
    ax.set_ylabel("records")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(summary: dict, sources: list[str], tokenizer_name: str | None, png: str | None) -> str:
    lines = [f"# Data inspection: {', '.join(sources)}", "", f"- records: {summary['records']}",
             f"- formats: {summary['formats']}", f"- languages: {summary['languages']}",
             f"- exact duplicates: {summary['exact_duplicates']} ({100 * summary['duplicate_rate']:.2f}%)",
             f"- fields present (records): {summary['fields']}"]
    if summary["missing_fields"]:
        lines.append(f"- fields missing in some records: {summary['missing_fields']}")
    if summary["empty_text"]:
        lines.append(f"- empty text fields: {summary['empty_text']}")
    if summary["zh_vocabulary"] is not None:
        lines.append(f"- Chinese (jieba): {summary['zh_words_per_record']} words per record, "
                     f"vocabulary {summary['zh_vocabulary']} words")
    lines += ["", "| length | min | mean | p50 | p90 | p99 | max |", "|---|---|---|---|---|---|---|"]
    for name in ("chars", "tokens"):
        s = summary[name]
        if s:
            label = f"tokens ({tokenizer_name})" if name == "tokens" else name
            lines.append(f"| {label} | {s['min']} | {s['mean']} | {s['p50']} | {s['p90']} | {s['p99']} | {s['max']} |")
    if png:
        lines += ["", f"![token lengths]({png})"]
    return "\n".join(lines) + "\n"
