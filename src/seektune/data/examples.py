"""Evaluation examples (and GRPO's training prompts): the prompt messages, the reference answer, and optional key fact / label.

Accepted records: alpaca / ShareGPT / OpenAI messages (everything before the last assistant turn is the
prompt, that turn is the reference), or {"question", "reference"[, "key_fact"][, "label"]} (the demo's
held-out format), or an image-caption pair {"image", "text"} (the caption is the reference). Images (`images`,
`image`, OpenAI image parts) are resolved beside the data file as in training. Errors name file:line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from seektune.data.formats import ReadReport, attach_images, normalise, raw_images, read_checked, with_images
from seektune.data.jsonio import Tally, read_records
from seektune.errors import DataError


@dataclass
class Example:
    index: int
    messages: list[dict]        # the prompt (system + history + question)
    reference: str
    key_fact: str | None = None
    label: str | None = None
    meta: dict = field(default_factory=dict)
    where: str = ""             # file:line of the record
    reference_reasoning: str | None = None   # the reference answer's reasoning, when the record has one
    images: list[str] = field(default_factory=list)   # the prompt's images (absolute paths or data URLs), in order

    @property
    def question(self) -> str:
        return self.messages[-1]["content"]


def _example(index: int, record: dict, system_prompt: str | None, where: str, base_dir: Path) -> Example:
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    if "question" in record:
        if not isinstance(record.get("reference", record.get("label")), str):
            raise ValueError("a {question, ...} record needs a string reference (or label)")
        reference = record.get("reference", record.get("label"))
        prompt, images = attach_images(system + [{"role": "user", "content": record["question"]}],
                                       raw_images(record), base_dir)
        return Example(index, prompt, reference, record.get("key_fact"), record.get("label"),
                       record.get("metadata") or {}, where, images=images)
    content, images = with_images(record, normalise(record, "auto", system_prompt), base_dir)
    if isinstance(content, str):
        raise ValueError("a plain text record has no reference answer (use it in a perplexity task)")
    last = max(i for i, m in enumerate(content) if m["role"] == "assistant")
    return Example(index, content[:last], content[last]["content"], record.get("key_fact"),
                   record.get("label"), record.get("metadata") or {}, where, content[last].get("reasoning"), images)


def load_examples(path: str | Path, system_prompt: str | None = None, limit: int = 0) -> list[Example]:
    examples = []
    base_dir = Path(path).resolve().parent
    for item in read_records([Path(path)], Tally()):
        try:
            examples.append(_example(len(examples), item.record, system_prompt, item.where, base_dir))
        except (ValueError, KeyError) as exc:
            raise DataError(f"{item.where}: {exc}") from None
        if limit and len(examples) >= limit:
            break
    if not examples:
        raise DataError(f"{path}: no evaluation examples")
    return examples


def load_records(path: str | Path, limit: int = 0) -> list[dict]:
    """Raw records for perplexity (text records allowed)."""
    records = [item.record for item in read_records([Path(path)], Tally())]
    return records[:limit] if limit else records


def read_examples(path: str | Path, system_prompt: str | None = None, on_error: str = "raise",
                  report: ReadReport | None = None) -> list[Example]:
    """Examples of a training file (GRPO's prompts), with the training reader's on_error rule and counts."""
    examples: list[Example] = []
    base_dir = Path(path).resolve().parent

    def parse(value: object, where: str) -> Example:   # indices count the examples kept so far
        if not isinstance(value, dict):
            raise ValueError(f"record must be a JSON object, got {type(value).__name__}")
        examples.append(_example(len(examples), value, system_prompt, where, base_dir))
        return examples[-1]

    read_checked(path, parse, on_error, report)
    return examples
