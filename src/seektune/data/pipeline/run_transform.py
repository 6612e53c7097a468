"""seektune data augment | synthesize | convert | mix | legal."""

from __future__ import annotations

import json
import random
from pathlib import Path

from seektune.data.pipeline import augment as A
from seektune.data.pipeline import legal as L
from seektune.data.pipeline import synthesize as S
from seektune.data.pipeline.convert import TripleTemplate, convert as convert_record
from seektune.data.pipeline.dedup import Deduplicator
from seektune.data.pipeline.endpoint import Endpoint
from seektune.data.pipeline.fields import map_texts, prompt_and_answer
from seektune.atomic import JsonlWriter
from seektune.data.jsonio import Tally
from seektune.data.pipeline.mix import exact_counts, interleave, largest_total, pick_indices
from seektune.data.pipeline.step import Step
from seektune.errors import ConfigError, DataError


def augment(step: Step, output: Path, synonyms: Path | None, shuffle: bool, endpoint: Endpoint | None,
            pivot: str, keep_original: bool) -> None:
    groups = A.load_synonyms(synonyms) if synonyms else []
    if not (groups or shuffle or endpoint):
        raise ConfigError("augment: choose at least one of --synonyms FILE, --shuffle-sentences, --endpoint URL")
    rng = random.Random(step.seed)
    with JsonlWriter(output, step.tally) as out:
        for item in step.records():
            record = item.record
            if keep_original:
                out.write(record)
            if groups:
                changes: list[str] = []

                def swap(text: str) -> str:
                    new, done = A.swap_synonyms(text, groups, rng)
                    changes.extend(done)
                    return new

                swapped = map_texts(record, swap)
                if changes:
                    out.write(A.with_provenance(swapped, record, "synonym", ", ".join(changes[:10])))
            if shuffle:
                shuffled = A.shuffle_context(record, rng)
                if shuffled is not None:
                    out.write(A.with_provenance(shuffled, record, "sentence_order"))
            if endpoint is not None:
                out.write(A.with_provenance(A.back_translate(record, endpoint, pivot), record,
                                            f"back_translation:{pivot}"))
    if endpoint is not None:
        step.extra["endpoint"] = endpoint.describe
    step.finish([output])


def synthesize(step: Step, output: Path, endpoint: Endpoint, per_passage: int, domain: str, existing: list[Path],
               passage_chars: int) -> None:
    seen = Deduplicator(threshold=0.85)
    existing_tally = Tally()
    for item in step.records(existing, existing_tally, progress=False):
        seen.remember(prompt_and_answer(item.record)[0] or "")
    step.extra.update({"endpoint": endpoint.describe, "existing_records": existing_tally.records_in})
    docs = S.document_texts(step.inputs, lambda p: step.records([p], check=False, progress=False))
    with JsonlWriter(output, step.tally) as out:
        for source, text in docs:
            for index, passage in enumerate(S.passages(text, passage_chars)):
                pairs = S.generate(endpoint, passage, per_passage, domain)
                if not pairs:
                    step.tally.remove("endpoint reply had no valid JSON pairs", f"{source} passage {index}")
                for pair in pairs:
                    step.tally.records_in += 1
                    reason = seen.check(pair["instruction"])
                    if reason:
                        step.tally.remove(f"{reason} of an existing or generated question", source)
                        continue
                    pair["metadata"] = {"source": source, "passage_index": index, "passage": passage,
                                        "operation": "synthesize", "model": endpoint.model}
                    out.write(pair)
    step.finish([output], extra_inputs=existing)


def convert(step: Step, output: Path, target: str | None, template: Path | None) -> None:
    if (target is None) == (template is None):
        raise ConfigError("convert: give exactly one of --to FORMAT or --template FILE")
    builder = TripleTemplate(json.loads(template.read_text(encoding="utf-8"))) if template else None
    with JsonlWriter(output, step.tally) as out:
        for item in step.records(check=builder is None):
            try:
                out.write(builder.build(item.record) if builder else convert_record(item.record, target))
            except ValueError as exc:
                if step.on_error == "raise":
                    raise DataError(f"{item.where}: {exc}\n(pass --on-error skip to skip and count)") from None
                step.tally.remove(f"cannot convert: {exc}", item.where)
    step.finish([output])


def _count(step: Step, path: Path) -> int:
    return sum(1 for _ in step.records([path], Tally(), progress=False))


def mix(step: Step, output: Path, sources: list[tuple[str, Path, float]], total: int | None) -> dict:
    """Exact proportions: counts by largest remainder; without --total, the largest mix with no repeats."""
    sizes = [_count(step, path) for _, path, _ in sources]
    weights = [w for _, _, w in sources]
    total = total or largest_total(weights, sizes)
    counts = exact_counts(weights, total)
    rng = random.Random(step.seed)
    chosen = [pick_indices(size, count, rng) for size, count in zip(sizes, counts)]
    streams = []
    for (name, path, _), picks in zip(sources, chosen):
        def stream(path=path, picks=picks, name=name):
            wanted = iter(picks)
            target = next(wanted, None)
            for i, item in enumerate(step.records([path], Tally(), progress=False)):
                while target == i:
                    meta = {**(item.record.get("metadata") or {}), "domain": name}
                    yield {**item.record, "metadata": meta}
                    target = next(wanted, None)
        streams.append(stream())
    step.tally.records_in = sum(sizes)
    with JsonlWriter(output, step.tally) as out:
        for source in interleave(counts, rng):
            out.write(next(streams[source]))
    plan = {name: {"weight": w, "available": size, "taken": c, "share": round(c / total, 6),
                   "repeated": c > size} for (name, _, w), size, c in zip(sources, sizes, counts)}
    step.extra["mix"] = plan
    for name, p in plan.items():
        print(f"  {name}: {p['taken']} of {p['available']} ({100 * p['share']:.2f}%)"
              + (" (repeated: the source is smaller than its share)" if p["repeated"] else ""))
    step.finish([output])
    return plan


def legal(step: Step, out_dir: Path, test_fraction: float, max_articles: int | None, min_chars: int,
          max_chars: int, laws: list[str] | None = None, known: Path | None = None,
          test_tasks: tuple[str, ...] = ("cite", "content"), train_tasks: tuple[str, ...] = ("cite", "content")
          ) -> dict:
    db = L.laws_db()
    items = L.select(L.articles(db, min_chars, max_chars), [L.LawSelection.parse(s) for s in laws or []])
    keep = L.known_articles(known, items) if known else set()
    train, test = L.split(items, test_fraction, max_articles, step.seed or 0, keep)
    step.inputs = [db, *([known] if known else [])]
    step.tally.records_in = len(train) + len(test)
    paths = {"train": out_dir / "train.jsonl", "test": out_dir / "test.jsonl"}
    for name, part in (("train", train), ("test", test)):
        with JsonlWriter(paths[name], step.tally) as out:
            for article in part:
                for pair in L.pairs(article):
                    if pair["metadata"]["task"] in (train_tasks if name == "train" else test_tasks):
                        out.write(pair)
    overlap = {a.key for a in train} & {a.key for a in test}
    if overlap:  # split() partitions one list; this guards against a future change breaking that
        raise DataError(f"legal split: {len(overlap)} articles on both sides")
    step.extra.update({"articles": {"train": len(train), "test": len(test), "known": len(keep)},
                       "laws": len({a.law for a in train + test})})
    step.finish([paths["train"], paths["test"]])
    return step.extra
