"""Instruction/answer pairs generated from domain documents through an OpenAI-compatible endpoint.

Self-instruct style: each passage goes to the model with a request for N question/answer pairs grounded
only in that passage, returned as JSON. Pairs whose question duplicates existing data (exact or near) or an
earlier generated pair are dropped; each kept pair carries its source passage as metadata.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

from seektune.data.pipeline.endpoint import Endpoint

PROMPT = """You write training data for a {domain} assistant.
Read the passage and write {n} diverse question/answer pairs that a {domain} professional or a client might ask.
Rules: every answer must be fully supported by the passage; questions must be answerable without seeing the passage;
vary the question type (fact, explanation, application, comparison); answer in the passage's language.
Return only JSON: a list of objects with keys "instruction" and "output".

Passage:
{passage}"""


def passages(text: str, max_chars: int = 1500) -> list[str]:
    """Paragraph-aligned chunks of at most `max_chars` (a longer paragraph is cut at sentence ends)."""
    chunks, current = [], ""
    for paragraph in [p.strip() for p in re.split(r"\n\s*\n|\n", text) if p.strip()]:
        pieces = [paragraph] if len(paragraph) <= max_chars else re.findall(
            r".{1,%d}(?:[。！？.!?](?=\s|$)|$)" % max_chars, paragraph, flags=re.S)
        for piece in pieces:
            if current and len(current) + len(piece) + 1 > max_chars:
                chunks.append(current)
                current = ""
            current = f"{current}\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def document_texts(paths: list[Path], read_jsonl) -> Iterator[tuple[str, str]]:
    """(source, text) for .txt/.md files and for text records of JSONL files."""
    for path in paths:
        if path.suffix.lower() in (".txt", ".md"):
            yield str(path), path.read_text(encoding="utf-8")
        else:
            for item in read_jsonl(path):
                yield item.where, item.record.get("text") or ""


def parse_pairs(reply: str) -> list[dict]:
    """The JSON list in a model reply (code fences and chatter around it tolerated); invalid pairs dropped."""
    match = re.search(r"\[.*\]", reply, flags=re.S)
    if not match:
        return []
    try:
        values = json.loads(match.group(0))
    except json.JSONDecodeError:
        return []
    pairs = []
    for v in values if isinstance(values, list) else []:
        if isinstance(v, dict) and isinstance(v.get("instruction"), str) and isinstance(v.get("output"), str) \
                and v["instruction"].strip() and v["output"].strip():
            pairs.append({"instruction": v["instruction"].strip(), "input": "", "output": v["output"].strip()})
    return pairs


def generate(endpoint: Endpoint, passage: str, n: int, domain: str) -> list[dict]:
    reply = endpoint.chat([{"role": "user", "content": PROMPT.format(domain=domain, n=n, passage=passage)}])
    return parse_pairs(reply)
