"""From the data section of the config to training and eval rows, with a report of every count."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from seektune.config import DataConfig, DataFile
from seektune.data.batching import Row, pack, unpacked
from seektune.data.captions import caption_row
from seektune.data.formats import ReadReport, Record, read_file
from seektune.data.examples import Example, read_examples
from seektune.data.images import ImageTokens
from seektune.data.preference import PreferenceRecord, read_pairs, render_pair
from seektune.data.prompts import render_prompt
from seektune.data.render import IGNORE, Renderer, Sample
from seektune.data.terms import TermMatcher
from seektune.errors import DataError


@dataclass
class DataReport:
    read: ReadReport = field(default_factory=ReadReport)
    train_samples: int = 0
    eval_samples: int = 0
    train_rows: int = 0
    train_tokens: int = 0
    train_supervised_tokens: int = 0
    truncated: int = 0
    dropped_overlength: int = 0
    split_for_template: int = 0
    term_weighted_tokens: int = 0
    reasoning_tokens: int = 0      # tokens of the reasoning blocks in assistant turns (as rendered)
    answer_tokens: int = 0         # tokens of the answers themselves, end-of-turn included
    train_images: int = 0          # images in the training rows (vision-language models)
    kind: str = "sft"              # sft, pairs, prompts or captions (seektune.data.dataset.KINDS)

    def _token_line(self) -> str:
        if self.kind == "prompts":
            return f"train prompt tokens: {self.train_tokens} (answers are sampled during training)"
        if self.kind == "captions":
            return f"train caption tokens: {self.train_tokens} ({self.train_samples} image-caption pairs)"
        return f"train tokens: {self.train_tokens} ({self.train_supervised_tokens} supervised)"

    def lines(self) -> list[str]:
        out = [
            f"records read: {self.read.read}, skipped: {sum(self.read.skipped.values())}",
            f"train samples: {self.train_samples} in {self.train_rows} rows, eval samples: {self.eval_samples}",
            self._token_line(),
            f"truncated: {self.truncated}, dropped (too long / nothing supervised): {self.dropped_overlength}",
        ]
        if self.split_for_template:
            out.append(f"conversations split per turn (template rewrites history): {self.split_for_template}")
        if self.train_images:
            out.append(f"train images: {self.train_images}")
        if self.reasoning_tokens:
            out.append(f"assistant turns: {self.reasoning_tokens} reasoning tokens, {self.answer_tokens} answer tokens")
        if self.term_weighted_tokens:
            out.append(f"term-weighted answer tokens: {self.term_weighted_tokens}")
        for reason, n in self.read.skipped.items():
            out.append(f"  skipped {n} x {reason}")
        out += [f"  e.g. {s}" for s in self.read.first_skips]
        return out

    def as_dict(self) -> dict:
        return {
            "records_read": self.read.read, "records_skipped": dict(self.read.skipped),
            "train_samples": self.train_samples, "eval_samples": self.eval_samples,
            "train_rows": self.train_rows, "train_tokens": self.train_tokens,
            "train_supervised_tokens": self.train_supervised_tokens, "truncated": self.truncated,
            "dropped": self.dropped_overlength, "split_for_template": self.split_for_template,
            "term_weighted_tokens": self.term_weighted_tokens, "reasoning_tokens": self.reasoning_tokens,
            "answer_tokens": self.answer_tokens, "kind": self.kind, "train_images": self.train_images,
        }


KINDS = ("sft", "pairs", "prompts", "captions")   # what an objective trains on: answers, preference pairs, prompts
# to sample, image-caption pairs


def _read(f: DataFile, cfg: DataConfig, report: ReadReport, kind: str) -> list:
    if kind == "pairs":
        return read_pairs(f.path, cfg.system_prompt, cfg.on_error, report, cfg.reasoning_field)
    if kind == "prompts":
        return read_examples(f.path, cfg.system_prompt, cfg.on_error, report)
    return read_file(f.path, f.format, cfg.system_prompt, cfg.on_error, report, cfg.reasoning_field)


def _read_all(files: list[DataFile], cfg: DataConfig, report: ReadReport,
              kind: str) -> list[tuple[str | None, Record | PreferenceRecord | Example]]:
    records: list[tuple[str | None, Record | PreferenceRecord | Example]] = []
    for f in files:
        skipped_before = sum(report.skipped.values())
        found = _read(f, cfg, report, kind)
        if not found:
            skipped = sum(report.skipped.values()) - skipped_before
            why = f"all {skipped} records were skipped as malformed" if skipped else "it is empty"
            raise DataError(f"{f.path}: no usable records ({why})")
        records += [(f.domain, r) for r in found]
    return records


def _render(records: list[Record], renderer: Renderer) -> list[Sample]:
    samples: list[Sample] = []
    for r in records:
        if isinstance(r.content, str):
            samples += renderer.text(r.content, r.where)
        else:
            samples += renderer.conversation(r.content, r.where, r.images)
    return samples


@dataclass
class Datasets:
    train: list[Row]
    eval: list[Row]
    report: DataReport
    train_domains: dict[str, list[Row]] = field(default_factory=dict)  # filled when files name domains
    eval_domains: dict[str, list[Row]] = field(default_factory=dict)


def _caption_rows(records: list[Record], tokenizer, cfg: DataConfig, report: ReadReport) -> list:
    """One row per image-caption pair; a record that is not one (no image, two, no caption) is an error naming
    it, or a counted skip under on_error: skip."""
    rows = []
    for record in records:
        try:
            rows.append(caption_row(record, tokenizer, cfg.max_length))
        except DataError as exc:
            if cfg.on_error != "skip":
                raise
            report.skip(record.where, str(exc).split(": ", 1)[-1])
    return rows


def _rows_by_domain(records: list[tuple[str | None, Record]], renderer: Renderer, cfg: DataConfig, kind: str,
                    group_size: int, report: ReadReport) -> tuple[dict[str | None, list[Row]], int]:
    """Rows per domain (packing never mixes domains, so a row's domain is known); also the sample count."""
    groups: dict[str | None, list[Record]] = {}
    for domain, record in records:
        groups.setdefault(domain, []).append(record)
    rows, n_samples = {}, 0
    for domain, group in groups.items():
        if kind == "pairs":   # never packed, one unit per pair
            rows[domain] = [row for row in (render_pair(renderer, r) for r in group) if row is not None]
            n_samples += 2 * len(rows[domain])
            continue
        if kind == "captions":   # one unit per pair, the caption tokenised alone
            rows[domain] = _caption_rows(group, renderer.tokenizer, cfg, report)
            n_samples += len(rows[domain])
            continue
        if kind == "prompts":   # one unit per sampled completion
            rows[domain] = [row for row in (render_prompt(renderer, e, group_size) for e in group) if row]
            n_samples += len(rows[domain])
            continue
        samples = _render(group, renderer)
        n_samples += len(samples)
        rows[domain] = pack(samples, cfg.max_length) if cfg.packing else unpacked(samples)
    return rows, n_samples


def build(cfg: DataConfig, tokenizer, seed: int, terms: TermMatcher | None = None,
          term_weight: float = 1.0, kind: str = "sft", group_size: int = 1,
          images: ImageTokens | None = None) -> Datasets:
    """Rows for training and evaluation. kind "sft": supervised answers (packed or padded); "pairs": preference
    pairs (prompt, chosen, rejected), each answer supervised alone after the exact inference prompt; "prompts":
    inference prompts with what reward functions check (key fact, reference), `group_size` samples each.
    `images`: a vision-language model's image tokens (records' images are expanded into them)."""
    if kind not in KINDS:
        raise ValueError(f"unknown data kind {kind!r}")
    report = DataReport(kind=kind)
    train_records = _read_all(cfg.train, cfg, report.read, kind)
    eval_records = _read_all(cfg.eval, cfg, report.read, kind)
    if not eval_records and cfg.eval_fraction > 0:
        shuffled = train_records[:]
        random.Random(seed).shuffle(shuffled)
        k = max(1, int(len(shuffled) * cfg.eval_fraction))
        eval_records, train_records = shuffled[:k], shuffled[k:]
    renderer = Renderer(tokenizer, cfg.max_length, cfg.overlength, cfg.train_on if kind == "sft" else "last_assistant",
                        terms, term_weight, cfg.reasoning, images)
    train_groups, report.train_samples = _rows_by_domain(train_records, renderer, cfg, kind, group_size,
                                                                report.read)
    eval_groups, report.eval_samples = _rows_by_domain(eval_records, renderer, cfg, kind, group_size,
                                                              report.read)
    if not report.train_samples:
        raise DataError("no training samples left after reading and rendering; see the data report above")
    empty = sorted(d for d, rows in train_groups.items() if d is not None and not rows)
    if empty:
        raise DataError(f"domain(s) {empty} have no training rows left after rendering")
    train_rows = [r for rows in train_groups.values() for r in rows]
    eval_rows = [r for rows in eval_groups.values() for r in rows]
    report.train_rows = len(train_rows)
    report.train_images = sum(len(getattr(r, "images", ())) for r in train_rows)
    if kind == "prompts":   # nothing is supervised until answers are sampled
        sequences, report.train_tokens = [], sum(len(r.prompt_ids) for r in train_rows)
    elif kind == "captions":
        sequences, report.train_tokens = [], sum(len(r.caption_ids) for r in train_rows)
    else:
        sequences = [s for r in train_rows for s in ((r.chosen, r.rejected) if kind == "pairs" else (r,))]
        report.train_tokens = sum(len(r.input_ids) for r in sequences)
    report.train_supervised_tokens = sum(r.supervised for r in (train_rows if kind == "captions" else sequences))
    report.truncated = renderer.stats.truncated
    report.dropped_overlength = renderer.stats.dropped_overlength
    report.split_for_template = renderer.stats.split_for_template
    report.reasoning_tokens = renderer.stats.reasoning_tokens
    report.answer_tokens = renderer.stats.answer_tokens
    report.term_weighted_tokens = sum(w != 1.0 for r in sequences if r.weights is not None
                                      for w, t in zip(r.weights, r.targets) if t != IGNORE)
    named = {d: rows for d, rows in train_groups.items() if d is not None}
    return Datasets(train_rows, eval_rows, report, named,
                    {d: rows for d, rows in eval_groups.items() if d is not None})
