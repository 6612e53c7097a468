"""Augmentation that keeps meaning: dictionary synonym/entity swaps, sentence-order perturbation, and
back-translation through an OpenAI-compatible endpoint. Every new record keeps its provenance in
metadata (source_id, operation), which the leakage check uses to keep test items' copies out of train."""

from __future__ import annotations

import random
import re
from pathlib import Path

from seektune.data.pipeline.endpoint import Endpoint
from seektune.data.pipeline.fields import kind, map_texts, record_id
from seektune.errors import DataError

_SEPARATORS = re.compile(r"\s*(?:↔|<->|<=>|=|\t|,|，)\s*")
_SENTENCE = re.compile(r"(?<=[。！？；!?;])|(?<=[.])\s+(?=[A-Z\"'(\[])")


def load_synonyms(path: str | Path) -> list[list[str]]:
    """One group per line: `心电图 ↔ ECG` (also =, <->, tab or comma); '#' starts a comment."""
    groups = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        terms = [t for t in _SEPARATORS.split(line) if t]
        if len(terms) < 2:
            raise DataError(f"{path}:{number}: a synonym line needs at least two terms, e.g. 心电图 ↔ ECG")
        groups.append(terms)
    return groups


def swap_synonyms(text: str, groups: list[list[str]], rng: random.Random) -> tuple[str, list[str]]:
    """Replace every occurrence of a dictionary term with another term of its group (longest terms first)."""
    lookup = {term: group for group in groups for term in group}
    if not lookup:
        return text, []
    pattern = re.compile("|".join(re.escape(t) for t in sorted(lookup, key=len, reverse=True)))
    changes: list[str] = []

    def pick(m: re.Match) -> str:
        options = [t for t in lookup[m.group(0)] if t != m.group(0)]
        choice = rng.choice(options)
        changes.append(f"{m.group(0)}->{choice}")
        return choice

    return pattern.sub(pick, text), changes


def split_sentences(text: str) -> list[str]:
    return [s for s in (p.strip() for p in _SENTENCE.split(text)) if s]


def shuffle_sentences(text: str, rng: random.Random) -> str:
    """Shuffle sentences inside each paragraph (paragraph order and list structure stay)."""
    out = []
    for paragraph in text.split("\n"):
        sentences = split_sentences(paragraph)
        if len(sentences) >= 3:
            for _ in range(5):
                rng.shuffle(sentences)
                if " ".join(sentences) != paragraph:
                    break
            joiner = "" if re.search(r"[\u4e00-\u9fff]", paragraph) else " "
            paragraph = joiner.join(sentences)
        out.append(paragraph)
    return "\n".join(out)


def shuffle_context(record: dict, rng: random.Random) -> dict | None:
    """Sentence-order perturbation of the context, not of instructions or answers (where order carries
    meaning): alpaca `input`, and the text of text records."""
    fmt = kind(record)
    out = dict(record)
    if fmt == "alpaca" and record.get("input"):
        out["input"] = shuffle_sentences(record["input"], rng)
        changed = out["input"] != record["input"]
    elif fmt == "text":
        out["text"] = shuffle_sentences(record["text"], rng)
        changed = out["text"] != record["text"]
    else:
        return None
    return out if changed else None


def back_translate(record: dict, endpoint: Endpoint, pivot: str) -> dict:
    """Paraphrase the user side through a pivot language; answers stay (a paraphrased answer may lose facts)."""
    def user_side(text: str) -> str:
        there = endpoint.chat([{"role": "user", "content": f"Translate into {pivot}. Reply with the translation "
                                f"only.\n\n{text}"}], temperature=0.3)
        return endpoint.chat([{"role": "user", "content": "Translate back into the language of this original, "
                               f"keeping its meaning. Reply with the translation only.\n\nOriginal:\n{text}\n\n"
                               f"Translation to render:\n{there}"}], temperature=0.3).strip()

    fmt = kind(record)
    out = dict(record)
    if fmt == "alpaca":
        out["instruction"] = user_side(record["instruction"])
        return out
    if fmt == "text":
        return map_texts(record, user_side)
    key, turns = ("conversations", record["conversations"]) if fmt == "sharegpt" else ("messages", record["messages"])
    out[key] = [{**t, ("value" if "value" in t else "content"): user_side(t.get("value", t.get("content")))}
                if t.get("from", t.get("role")) in ("human", "user") else t for t in turns]
    return out


def with_provenance(new: dict, source: dict, operation: str, detail: str | None = None) -> dict:
    meta = dict(new.get("metadata") or {})
    meta.update({"source_id": record_id(source), "operation": operation})
    if detail:
        meta["augment_detail"] = detail
    new = {k: v for k, v in new.items() if k not in ("id", "uid", "sample_id")}
    new["metadata"] = meta
    return new
