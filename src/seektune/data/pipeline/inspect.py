"""What is in a dataset: counts, fields, empty values, language mix, token lengths, duplicates, images (count,
formats, sizes, unreadable ones) and for Chinese text jieba word statistics. Writes a markdown summary and a
token-length histogram PNG."""

from __future__ import annotations

import logging
import re
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from seektune.data import images
from seektune.data.formats import raw_images
from seektune.data.pipeline.dedup import KeyIndex, exact_key, in_group
from seektune.data.pipeline.fields import image_group, joined, kind, texts
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
    images: int = 0
    records_with_images: int = 0
    image_formats: Counter = field(default_factory=Counter)
    image_sides: array = field(default_factory=lambda: array("I"))   # the longer side of each readable image
    image_sizes: Counter = field(default_factory=Counter)            # "WxH" -> images
    bad_images: list = field(default_factory=list)                   # "file:line: reason" (first 10)
    bad_image_count: int = 0

    def add(self, record: dict, tokenizer=None, where: str | None = None) -> None:
        self.records += 1
        self._add_images(record, where)
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
        if self._seen.contains_any(key := in_group(exact_key(text), image_group(record))):
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

    def _add_images(self, record: dict, where: str | None) -> None:
        """Images are looked up beside the record's file, as training reads them; unreadable ones are listed."""
        try:
            refs = raw_images(record)
        except ValueError as exc:
            refs = []
            self._bad_image(where, str(exc))
        if not refs:
            return
        self.records_with_images += 1
        base = Path(where.rsplit(":", 1)[0]).resolve().parent if where else Path.cwd()
        for k, ref in enumerate(refs):
            self.images += 1
            try:
                info = images.probe(images.resolve(ref, base, f"images[{k}]"))
            except ValueError as exc:
                self._bad_image(where, str(exc))
                continue
            self.image_formats[info.format] += 1
            self.image_sides.append(max(info.width, info.height))
            self.image_sizes[f"{info.width}x{info.height}"] += 1

    def _bad_image(self, where: str | None, reason: str) -> None:
        self.bad_image_count += 1
        if len(self.bad_images) < 10:
            self.bad_images.append(f"{where or '?'}: {reason}")

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
            "images": {"count": self.images, "records_with_images": self.records_with_images,
                       "formats": dict(self.image_formats), "longer_side": stats(self.image_sides),
                       "common_sizes": dict(self.image_sizes.most_common(5)), "unreadable": self.bad_image_count,
                       "unreadable_examples": self.bad_images},
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
    found = summary["images"]
    if found["count"] or found["unreadable"]:
        lines.append(f"- images: {found['count']} in {found['records_with_images']} records, formats "
                     f"{found['formats']}, common sizes {found['common_sizes']}, unreadable {found['unreadable']}")
        lines += [f"  - {e}" for e in found["unreadable_examples"]]
    lines += ["", "| length | min | mean | p50 | p90 | p99 | max |", "|---|---|---|---|---|---|---|"]
    for name in ("chars", "tokens"):
        s = summary[name]
        if s:
            label = f"tokens ({tokenizer_name})" if name == "tokens" else name
            lines.append(f"| {label} | {s['min']} | {s['mean']} | {s['p50']} | {s['p90']} | {s['p99']} | {s['max']} |")
    if found["longer_side"]:
        s = found["longer_side"]
        lines.append(f"| image longer side (px) | {s['min']} | {s['mean']} | {s['p50']} | {s['p90']} | {s['p99']} "
                     f"| {s['max']} |")
    if png:
        lines += ["", f"![token lengths]({png})"]
    return "\n".join(lines) + "\n"
