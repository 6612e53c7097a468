"""seektune data inspect | clean | balance."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from pathlib import Path
from typing import Iterator

from seektune.data.pipeline import clean as C
from seektune.data.pipeline.dedup import Deduplicator
from seektune.data.pipeline.fields import joined, kind, map_texts, record_id
from seektune.data.pipeline.inspect import Inspection, histogram, markdown
from seektune.data.pipeline.jsonio import Item, JsonlWriter
from seektune.data.pipeline.manifest import write_json
from seektune.data.pipeline.step import Step, load_tokenizer
from seektune.errors import ConfigError


def inspect(step: Step, out_dir: Path, tokenizer_name: str | None) -> dict:
    tokenizer = load_tokenizer(tokenizer_name) if tokenizer_name else None
    found = Inspection()
    for item in step.records():
        found.add(item.record, tokenizer)
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
    """Mean per-token perplexity of a text under a causal LM (first `max_tokens` tokens)."""

    def __init__(self, model_path: str, max_tokens: int = 512):
        from seektune.models.loading import load_for_inference

        self.model, self.tokenizer = load_for_inference(model_path)
        self.max_tokens = max_tokens

    def __call__(self, text: str) -> float:
        import torch

        ids = self.tokenizer(text, return_tensors="pt", truncation=True, max_length=self.max_tokens)["input_ids"]
        if ids.shape[1] < 2:
            return float("inf")
        with torch.no_grad():
            loss = self.model(input_ids=ids, labels=ids).loss
        return math.exp(loss.item())


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


def clean(step: Step, output: Path, opts: dict) -> None:
    """Repair -> length and quality filters -> sliding windows -> token filter -> dedup -> perplexity."""
    repair = C.Repair(opts["normal_form"], opts["remove_pattern"]) if opts["repair"] else None
    need_tokens = opts["window"] or opts["min_tokens"] or opts["max_tokens"]
    tokenizer = load_tokenizer(opts["tokenizer"]) if need_tokens else None
    dedup = Deduplicator(exact=opts["exact_dedup"], near=opts["near_dedup"], threshold=opts["near_threshold"]) \
        if opts["exact_dedup"] or opts["near_dedup"] else None
    scorer = PerplexityScorer(opts["perplexity_model"]) if opts["max_perplexity"] else None
    html = [p for p in step.inputs if p.is_dir() or p.suffix.lower() in (".html", ".htm")]
    jsonl = [p for p in step.inputs if p not in html]
    t = step.tally

    def pieces(item: Item):
        record = map_texts(item.record, repair) if repair else item.record
        text = joined(record)
        if not text.strip():
            return t.remove("empty after cleaning", item.where)
        if len(text) < opts["min_chars"]:
            return t.remove(f"shorter than {opts['min_chars']} characters", item.where)
        if opts["max_chars"] and len(text) > opts["max_chars"]:
            return t.remove(f"longer than {opts['max_chars']} characters", item.where)
        if opts["quality"]:
            problem = C.quality_problem(text)
            if problem:
                return t.remove(f"quality: {problem}", item.where)
        if opts["window"] and kind(record) == "text":
            ids = tokenizer(record["text"], add_special_tokens=False)["input_ids"]
            spans = C.windows(ids, opts["window"], opts["stride"] or opts["window"])
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
                if tokenizer is not None and (opts["min_tokens"] or opts["max_tokens"]):
                    n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
                    if n < opts["min_tokens"] or (opts["max_tokens"] and n > opts["max_tokens"]):
                        t.remove(f"outside {opts['min_tokens']}..{opts['max_tokens'] or 'inf'} tokens", piece.where)
                        continue
                if dedup is not None:
                    reason = dedup.check(text)
                    if reason:
                        t.remove(reason, piece.where)
                        continue
                if scorer is not None and scorer(text) > opts["max_perplexity"]:
                    t.remove(f"perplexity above {opts['max_perplexity']}", piece.where)
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
