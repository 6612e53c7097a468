"""Convert between alpaca, ShareGPT, OpenAI messages and plain {"text","label","metadata"} records, and build
instruction/input/output triples from a template. Ids and metadata travel with the record, and so does
reasoning: `reasoning_content` on OpenAI/ShareGPT messages, inline `<think>` blocks in alpaca and text."""

from __future__ import annotations

import string
from typing import Literal

from seektune.data.formats import normalise
from seektune.data.reasoning import THINK_CLOSE, THINK_OPEN

Target = Literal["alpaca", "sharegpt", "openai", "text"]
TARGETS = ("alpaca", "sharegpt", "openai", "text")
_KEEP = ("id", "metadata", "label")


def _carry(source: dict, out: dict) -> dict:
    for key in _KEEP:
        if key in source and key not in out:
            out[key] = source[key]
    return out


def _inline(message: dict) -> str:
    """The message's text with its reasoning (if any) as an inline think block, the shape every reader takes."""
    if not message.get("reasoning"):
        return message["content"]
    return f"{THINK_OPEN}\n{message['reasoning']}\n{THINK_CLOSE}\n\n{message['content']}"


def _message(message: dict, role_key: str, text_key: str, role: str) -> dict:
    out = {role_key: role, text_key: message["content"]}
    if message.get("reasoning"):
        out["reasoning_content"] = message["reasoning"]
    return out


def to_alpaca(messages: list[dict]) -> dict:
    messages = [{**m, "content": _inline(m)} for m in messages]
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
    body = messages[1:] if system is not None else messages
    if body and body[-1]["role"] != "assistant":
        raise ValueError("the last turn must be the assistant's to become an alpaca output")
    pairs = [[body[i]["content"], body[i + 1]["content"]] for i in range(0, len(body) - 2, 2)]
    out = {"instruction": body[-2]["content"], "input": "", "output": body[-1]["content"]}
    if system:
        out["system"] = system
    if pairs:
        out["history"] = pairs
    return out


def convert(record: dict, target: Target) -> dict:
    """One record in any known format -> `target`. Raises ValueError with the reason."""
    content = normalise(record, "auto")
    if isinstance(content, str):
        if target != "text":
            raise ValueError("a plain text record has no question/answer; build triples with a template instead")
        return _carry(record, {"text": content})
    if target == "alpaca":
        return _carry(record, to_alpaca(content))
    if target == "openai":
        return _carry(record, {"messages": [_message(m, "role", "content", m["role"]) for m in content]})
    if target == "sharegpt":
        names = {"user": "human", "assistant": "gpt", "system": "system"}
        return _carry(record, {"conversations": [_message(m, "from", "value", names[m["role"]]) for m in content]})
    content = [{**m, "content": _inline(m)} for m in content]
    body = [m for m in content if m["role"] != "system"]
    if len(body) == 2:
        out = {"text": body[0]["content"], "label": body[1]["content"]}
    else:
        out = {"text": "\n".join(f"{m['role']}: {m['content']}" for m in content)}
    return _carry(record, out)


class TripleTemplate:
    """Build alpaca triples from any record's fields: {"instruction": "判断情感：", "input": "{text}",
    "output": "{label}"}. Missing fields are an error naming the field."""

    FIELDS = ("system", "instruction", "input", "output")

    def __init__(self, template: dict):
        unknown = set(template) - set(self.FIELDS)
        if unknown:
            raise ValueError(f"template keys must be among {self.FIELDS}; unknown: {sorted(unknown)}")
        if "instruction" not in template or "output" not in template:
            raise ValueError("a template needs at least 'instruction' and 'output'")
        self.template = template
        self.fields = {name for text in template.values()
                       for _, name, _, _ in string.Formatter().parse(text) if name}

    def build(self, record: dict) -> dict:
        values = {**{k: v for k, v in (record.get("metadata") or {}).items()}, **record}
        missing = sorted(f for f in self.fields if f not in values)
        if missing:
            raise ValueError(f"missing field {missing[0]!r} used by the template")
        out = {k: str(v).format(**{f: values[f] for f in self.fields}) for k, v in self.template.items()}
        return _carry(record, out)
