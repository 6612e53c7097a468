"""The text inside a record, whatever its format: read it for dedup and statistics, rewrite it for cleaning,
privacy and augmentation, while every other field (ids, labels, metadata) passes through untouched. Reasoning
counts as text (a message's `reasoning_content`/`reasoning`, an alpaca reasoning column): personal data in a
model's thinking must be masked like anywhere else."""

from __future__ import annotations

import copy
import hashlib
from typing import Callable

from seektune.data.formats import detect_format, normalise, raw_images
from seektune.data.reasoning import MESSAGE_FIELDS

ALPACA_FIELDS = ("system", "instruction", "input", "output")
ALPACA_REASONING = ("reasoning", "reasoning_content", "think", "thinking")   # columns reasoning sets use


def _content_texts(content: object) -> list[str]:
    """A message's text: the string, or the text parts of OpenAI content parts (images have none)."""
    if isinstance(content, list):
        return [p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text"
                and isinstance(p.get("text"), str)]
    return [content or ""]


def _turn_texts(turn: dict) -> list[str]:
    return _content_texts(turn.get("value", turn.get("content"))) + [turn[k] for k in MESSAGE_FIELDS
                                                                     if isinstance(turn.get(k), str) and turn[k]]


def kind(record: dict) -> str:
    try:
        return detect_format(record)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def validate(record: dict) -> None:
    """Raise ValueError with the reason when a record is not a readable alpaca/sharegpt/openai/text record."""
    normalise(record, "auto")


def texts(record: dict) -> list[str]:
    """Every text field, prompt and answer, in reading order."""
    fmt = kind(record)
    if fmt == "text":
        return [record["text"]]
    if fmt == "alpaca":
        history = [t for pair in record.get("history") or [] for t in pair]
        return [record[k] for k in (*ALPACA_FIELDS, *ALPACA_REASONING) if isinstance(record.get(k), str)
                and record[k]] + history
    turns = record["conversations"] if fmt == "sharegpt" else record["messages"]
    return [text for t in turns for text in _turn_texts(t)]


def joined(record: dict) -> str:
    return "\n".join(texts(record))


def image_group(record: dict) -> str:
    """The record's image references as written, one string ("" without images): records that differ in their
    images are never duplicates of each other."""
    try:
        refs = raw_images(record)
    except ValueError:
        return ""
    return "\n".join(r if isinstance(r, str) else repr(r) for r in refs)


def prompt_and_answer(record: dict) -> tuple[str, str]:
    """(everything the user side says, everything the assistant side says); text records are all answer."""
    fmt = kind(record)
    if fmt == "text":
        return "", record["text"]
    if fmt == "alpaca":
        thought = [record[k] for k in ALPACA_REASONING if isinstance(record.get(k), str) and record[k]]
        return ("\n".join(record.get(k) or "" for k in ("instruction", "input")).strip(),
                "\n".join([*thought, record.get("output", "")]))
    turns = record["conversations"] if fmt == "sharegpt" else record["messages"]
    answer_roles = {"gpt", "assistant", "chatgpt", "model", "bing", "bard"}
    prompt = [text for t in turns if t.get("from", t.get("role")) not in answer_roles
              for text in _content_texts(t.get("value", t.get("content")))]
    answer = [text for t in turns if t.get("from", t.get("role")) in answer_roles for text in _turn_texts(t)]
    return "\n".join(prompt), "\n".join(answer)


def map_texts(record: dict, fn: Callable[[str], str]) -> dict:
    """A copy of the record with `fn` applied to every text field."""
    out = copy.deepcopy(record)
    fmt = kind(out)
    if fmt == "text":
        out["text"] = fn(out["text"])
    elif fmt == "alpaca":
        for k in (*ALPACA_FIELDS, *ALPACA_REASONING):
            if isinstance(out.get(k), str) and out[k]:
                out[k] = fn(out[k])
        if out.get("history"):
            out["history"] = [[fn(q), fn(a)] for q, a in out["history"]]
    else:
        for turn in out["conversations"] if fmt == "sharegpt" else out["messages"]:
            key = "value" if "value" in turn else "content"
            for part in turn[key] if isinstance(turn.get(key), list) else []:   # OpenAI content parts
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                    part["text"] = fn(part["text"])
            for k in (key, *MESSAGE_FIELDS):
                if isinstance(turn.get(k), str) and turn[k]:
                    turn[k] = fn(turn[k])
    return out


def record_id(record: dict) -> str:
    """The record's own id when it has one, else a stable id from its content."""
    for key in ("id", "uid", "sample_id"):
        if isinstance(record.get(key), (str, int)):
            return str(record[key])
    return "sha1:" + hashlib.sha1(joined(record).encode("utf-8")).hexdigest()[:16]
