"""seektune data inspect | clean | balance."""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from pathlib import Path
from typing import Iterator, Literal

from pydantic import Field, field_validator, model_validator

from seektune.data.pipeline import clean as C
from seektune.data.pipeline.dedup import Deduplicator
from seektune.data.pipeline.fields import image_group, joined, kind, map_texts, record_id
from seektune.data.pipeline.inspect import Inspection, histogram, markdown
from seektune.atomic import JsonlWriter
from seektune.data.jsonio import Item
from seektune.atomic import write_json
from seektune.data.pipeline.step import Step, load_tokenizer
from seektune.errors import ConfigError
from seektune.schema import Section


def inspect(step: Step, out_dir: Path, tokenizer_name: str | None) -> dict:
    tokenizer = load_tokenizer(tokenizer_name) if tokenizer_name else None
    found = Inspection()
    for item in step.records():
        found.add(item.record, tokenizer, item.where)
    summary = found.summary()
    out_dir.mkdir(parents=True, exist_ok=True)
    png = None
    if found.token_lengths:
        histogram(found.token_lengths, out_dir / "token_lengths.png", f"token lengths ({tokenizer_name})")
        png = "token_lengths.png"
    (out_dir / "inspect.md").write_text(markdown(summary, [str(p) for p in step.inputs], tokenizer_name, png),
                                        encoding="utf-8")
    write_json(out_dir / "inspect.json", summary)
    step.tally.records_out = 0
    step.finish([out_dir / "inspect.json"])
    print((out_dir / "inspect.md").read_text(encoding="utf-8"))
    return summary


class PerplexityScorer:
    """Perplexity of a text record under a causal LM (first `max_tokens` tokens), with evaluation's own
    definition: the training objective's loss over the tokens a text record supervises."""

    def __init__(self, model_path: str, max_tokens: int = 512):
        from seektune.artifacts import load_for_inference   # torch and the model stack: only when scoring

        self.model, self.tokenizer = load_for_inference(model_path)
        self.max_tokens = max_tokens

    def __call__(self, text: str) -> float:
        from seektune.evaluate.perplexity import perplexity

        return perplexity(self.model, self.tokenizer, [{"text": text}], self.max_tokens)["perplexity"]


def _html_items(paths: list[Path], step: Step) -> Iterator[Item]:
    for page in C.html_files(paths):
        try:
            raw = page.read_text(encoding=step.encoding)
        except UnicodeDecodeError:
            raw = page.read_bytes().decode("utf-8", errors="replace")
            step.tally.remove("html decoded with replacement characters", str(page))
        title, text = C.html_to_text(raw)
        step.tally.records_in += 1
        yield Item(f"{page}:1", {"text": text, "metadata": {"source": str(page), "title": title}})


class CleanOptions(Section):
    """`seektune data clean` options; each field is the flag of the same name (--near-threshold...)."""

    no_repair: bool = Field(False, description="skip normalisation / control chars / whitespace")
    normal_form: Literal["NFKC", "NFC", "NFD", "NFKD", "none"] = Field(
        "NFKC", description="Unicode normal form: NFKC, NFC, NFD, NFKD or none")
    remove_pattern: str = Field(C.DEFAULT_REMOVE, description="regex of characters to delete")
    min_chars: int = Field(1, ge=0, description="drop records shorter than this")
    max_chars: int = Field(0, ge=0, description="drop records longer than this (0: no limit)")
    min_tokens: int = Field(0, ge=0, description="drop records with fewer tokens")
    max_tokens: int = Field(0, ge=0, description="drop records with more tokens (0: no limit)")
    tokenizer: str = Field("deepseek", description="tokenizer for token filters and windows")
    quality: bool = Field(False, description="drop mostly-symbol, repeated-line, char-run text")
    window: int = Field(0, ge=0, description="cut text records longer than this many tokens")
    stride: int = Field(0, ge=0, description="tokens between window starts (default: window)")
    no_dedup: bool = Field(False, description="keep exact and near duplicates")
    no_near_dedup: bool = Field(False, description="exact dedup only")
    near_threshold: float = Field(0.8, gt=0, lt=1, description="MinHash Jaccard threshold for near duplicates")
    max_perplexity: float = Field(0.0, ge=0, description="drop text scored above this (0: off)")
    perplexity_model: str | None = Field(None, description="model that scores perplexity (directory or packaged name)")

    @field_validator("remove_pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regex: {exc}") from None
        return value

    @model_validator(mode="after")
    def _perplexity(self) -> "CleanOptions":
        if self.max_perplexity and not self.perplexity_model:
            raise ValueError("--max-perplexity needs --perplexity-model (a model directory or packaged name)")
        return self


def clean(step: Step, output: Path, o: CleanOptions) -> None:
    """Repair -> length and quality filters -> sliding windows -> token filter -> dedup -> perplexity."""
    repair = None if o.no_repair else C.Repair(None if o.normal_form == "none" else o.normal_form, o.remove_pattern)
    tokenizer = load_tokenizer(o.tokenizer) if o.window or o.min_tokens or o.max_tokens else None
    exact, near = not o.no_dedup, not (o.no_dedup or o.no_near_dedup)
    dedup = Deduplicator(exact=exact, near=near, threshold=o.near_threshold) if exact or near else None
    scorer = PerplexityScorer(o.perplexity_model) if o.max_perplexity else None
    html = [p for p in step.inputs if p.is_dir() or p.suffix.lower() in (".html", ".htm")]
    jsonl = [p for p in step.inputs if p not in html]
    t = step.tally

    def pieces(item: Item):
        record = map_texts(item.record, repair) if repair else item.record
        text = joined(record)
        if not text.strip():
            return t.remove("empty after cleaning", item.where)
        if len(text) < o.min_chars:
            return t.remove(f"shorter than {o.min_chars} characters", item.where)
        if o.max_chars and len(text) > o.max_chars:
            return t.remove(f"longer than {o.max_chars} characters", item.where)
        if o.quality:
            problem = C.quality_problem(text)
            if problem:
                return t.remove(f"quality: {problem}", item.where)
        if o.window and kind(record) == "text":
            ids = tokenizer(record["text"], add_special_tokens=False)["input_ids"]
            spans = C.windows(ids, o.window, o.stride or o.window)
            if len(spans) > 1:
                source = record_id(item.record)
                for i, (a, b) in enumerate(spans):
                    meta = {**(record.get("metadata") or {}), "source_id": source, "window": i, "tokens": [a, b]}
                    yield Item(item.where, {**{k: v for k, v in record.items() if k != "id"},
                                            "text": tokenizer.decode(ids[a:b]), "metadata": meta})
                return
        yield Item(item.where, record)

    with JsonlWriter(output, t) as out:
        for item in itertools.chain(_html_items(html, step), step.records(jsonl)):  # streamed, never a list
            for piece in pieces(item) or ():
                text = joined(piece.record)
                if tokenizer is not None and (o.min_tokens or o.max_tokens):
                    n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
                    if n < o.min_tokens or (o.max_tokens and n > o.max_tokens):
                        t.remove(f"outside {o.min_tokens}..{o.max_tokens or 'inf'} tokens", piece.where)
                        continue
                if dedup is not None:
                    reason = dedup.check(text, image_group(piece.record))
                    if reason:
                        t.remove(reason, piece.where)
                        continue
                if scorer is not None and scorer(text) > o.max_perplexity:
                    t.remove(f"perplexity above {o.max_perplexity}", piece.where)
                    continue
                out.write(piece.record)
    if dedup is not None:
        step.extra["dedup_index_bytes"] = (dedup.exact.nbytes if dedup.exact else 0) + \
                                         (dedup.near.nbytes if dedup.near else 0)
        if dedup.near_keys:
            step.extra["lsh"] = {"bands": dedup.near_keys.bands, "rows": dedup.near_keys.rows,
                                 "num_perm": dedup.near_keys.num_perm, "ngram": dedup.near_keys.ngram}
    step.finish([output])


def balance(step: Step, output: Path, label_field: str, max_ratio: float, report_only: bool) -> dict:
    """Report label counts; cap every class at max_ratio x the smallest class (seeded, two streaming passes)."""
    if max_ratio < 1:
        raise ConfigError(f"--max-ratio must be >= 1 (e.g. 3 keeps majority:minority at most 3:1), got {max_ratio}")
    labels: list = []
    for item in step.records(check=False):
        if label_field not in item.record:
            raise ConfigError(f"{item.where}: no field {label_field!r}; name the label with --label-field")
        labels.append(str(item.record[label_field]))
    counts = Counter(labels)
    smallest = min(counts.values()) if counts else 0
    cap = {k: min(v, int(smallest * max_ratio)) for k, v in counts.items()}
    rng = random.Random(step.seed)
    keep: set[int] = set()
    for label in sorted(counts):
        positions = [i for i, lab in enumerate(labels) if lab == label]
        keep.update(rng.sample(positions, cap[label]) if not report_only else positions)
    step.tally.records_in = 0
    with JsonlWriter(output, step.tally) as out:
        for i, item in enumerate(step.records(check=False)):
            if i in keep:
                out.write(item.record)
            else:
                step.tally.remove(f"rebalanced: label {labels[i]} over {max_ratio}x the smallest class")
    after = Counter(labels[i] for i in keep)
    step.extra["labels_before"], step.extra["labels_after"] = dict(counts), dict(after)
    print(f"labels before: {dict(counts)}\nlabels after:  {dict(after)}")
    step.finish([output])
    return dict(after)
