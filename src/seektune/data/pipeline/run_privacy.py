"""seektune data privacy | leakage."""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from pathlib import Path

from seektune.data.pipeline.fields import map_texts
from seektune.atomic import JsonlWriter
from seektune.data.jsonio import Tally
from seektune.data.pipeline.leakage import LeakageChecker, load_entities, validate_test
from seektune.data.pipeline.privacy import Pseudonymiser
from seektune.data.pipeline.step import Step
from seektune.errors import ConfigError, DataError


def read_secret(secret_env: str, secret_file: Path | None) -> bytes:
    if secret_file is not None:
        return secret_file.read_bytes().strip()
    value = os.environ.get(secret_env)
    if not value:
        raise ConfigError(f"privacy needs a secret key: set ${secret_env} (at least 16 characters) or pass "
                          "--secret-file; keep it private and reuse it so pseudonyms stay stable across files")
    return value.encode("utf-8")


def privacy(step: Step, output: Path, secret: bytes, id_fields: list[str]) -> Counter:
    """Pseudonymise each file's records; a findings log (where, kind, pseudonym; never raw values) goes
    beside the output as <output>.privacy.jsonl."""
    masker = Pseudonymiser(secret, tuple(id_fields))
    findings_path = output.with_name(output.name + ".privacy.jsonl")
    with JsonlWriter(output, step.tally) as out, JsonlWriter(findings_path) as log:
        for item in step.records():
            before = len(masker.findings)
            record = map_texts(item.record, lambda text: masker.text(text, item.where, "text"))
            record = masker.fields(record, item.where)
            for f in masker.findings[before:]:
                log.write({"where": f.where, "field": f.field, "kind": f.kind, "pseudonym": f.pseudonym})
            masker.findings.clear()
            out.write(record)
    step.extra.update({"replaced": dict(masker.counts), "secret_fingerprint": masker.fingerprint,
                       "findings": str(findings_path)})
    print(f"replaced: {dict(masker.counts) or 'nothing'} (secret fingerprint {masker.fingerprint})")
    step.finish([output, findings_path])
    return masker.counts


def leakage(step: Step, test: list[Path], output: Path | None, report: Path, threshold: float,
            entities_file: Path | None, remove_entity_overlap: bool) -> dict:
    """Index the test set, stream train past it; report every leak and (with an output) write train without them."""
    checker = LeakageChecker(threshold, load_entities(entities_file))
    test_tally = Tally()
    for item in step.records(test, test_tally, check=False):
        try:
            validate_test(item.record)
        except ValueError as exc:   # the test side is never skipped: a leak check that drops test items lies
            raise DataError(f"{item.where}: {exc}") from None
        checker.index_test(item.record)
    kinds: Counter = Counter()
    shared_entities: Counter = Counter()
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(JsonlWriter(report))
        writer = stack.enter_context(JsonlWriter(output, step.tally)) if output else None
        for item in step.records():
            leak, shared = checker.check(item.record)
            shared_entities.update(shared)
            if leak:
                kinds[leak] += 1
                log.write({"where": item.where, "leak": leak, "shared_entities": sorted(shared)[:20]})
            if leak and (remove_entity_overlap or not leak.startswith("shares entities")):
                step.tally.remove(f"leak: {leak}", item.where)
            elif writer is not None:
                writer.write(item.record)
    summary = {"test_records": test_tally.records_in, "train_records": step.tally.records_in,
               "leaks": dict(kinds), "top_shared_entities": dict(shared_entities.most_common(20))}
    step.extra.update(summary)
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    step.finish([p for p in (output, report) if p is not None], extra_inputs=test)
    return summary
