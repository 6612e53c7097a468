"""Train/test leakage: exact copies, near duplicates, shared entities and augmented copies of test items.

The test set is indexed once (its keys only); train streams past it. Provenance wins over similarity: a
train record whose metadata.source_id is a test item's id is a leak however much augmentation changed it.
Test files may be training records or evaluation examples ({question, reference[, key_fact]}), the form
`seektune eval` reads.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from seektune.data.citations import citations
from seektune.data.pipeline.dedup import Deduplicator
from seektune.data.pipeline.fields import joined, prompt_and_answer, record_id, validate

_CODE = re.compile(r"\b[A-Z]{1,4}-?\d[\dA-Z.\-]{2,}\b")  # ICD codes, case numbers, product codes


def as_test_record(record: dict) -> dict:
    """An evaluation example as the alpaca record it would be (question -> instruction, reference -> output);
    training records unchanged."""
    if "question" in record and not {"instruction", "conversations", "messages", "text"} & record.keys():
        return {"instruction": record["question"], "input": "",
                "output": str(record.get("reference", record.get("label", "")))}
    return record


def validate_test(record: dict) -> None:
    if "question" in record and not isinstance(record["question"], str):
        raise ValueError("an evaluation example's question must be a string")
    validate(as_test_record(record))


def load_entities(path: str | Path | None) -> list[str]:
    if path is None:
        return []
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def entities(text: str, dictionary: list[str]) -> set[str]:
    """Entities that identify what a record is about: law articles, codes, and dictionary terms."""
    found = {c.render() for c in citations(text) if c.article is not None}
    found |= set(_CODE.findall(text))
    found |= {term for term in dictionary if term in text}
    return found


def provenance(record: dict) -> set[str]:
    ids = {record_id(record)}
    meta = record.get("metadata")
    if isinstance(meta, dict) and meta.get("source_id") is not None:
        ids.add(str(meta["source_id"]))
    return ids


@dataclass
class LeakageChecker:
    threshold: float = 0.8
    dictionary: list[str] = field(default_factory=list)
    min_shared_entities: int = 1

    def __post_init__(self) -> None:
        self._whole = Deduplicator(threshold=self.threshold)
        self._prompts = Deduplicator(threshold=self.threshold)
        self._ids: set[str] = set()
        self._entities: Counter = Counter()

    def index_test(self, record: dict) -> None:
        record = as_test_record(record)
        text = joined(record)
        self._whole.remember(text)
        prompt, _ = prompt_and_answer(record)
        if prompt.strip():
            self._prompts.remember(prompt)
        self._ids |= provenance(record)
        self._entities.update(entities(text, self.dictionary))

    def check(self, record: dict) -> tuple[str | None, set[str]]:
        """(leak kind or None, entities shared with the test set)."""
        text = joined(record)
        shared = entities(text, self.dictionary) & self._entities.keys()
        if provenance(record) & self._ids:
            return "augmented or copied test item (provenance)", shared
        whole = self._whole.seen(text)
        if whole:
            return f"{whole} duplicate of a test item", shared
        prompt, _ = prompt_and_answer(record)
        if prompt.strip():
            same_prompt = self._prompts.seen(prompt)
            if same_prompt:
                return f"{same_prompt} duplicate of a test question", shared
        if len(shared) >= self.min_shared_entities and shared:
            return "shares entities with the test set", shared
        return None, shared
