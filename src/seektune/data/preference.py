"""Preference pairs (a prompt, a chosen and a rejected answer) in the formats people have them in, read into one
shape and rendered by the SFT renderer: the prompt is exactly the inference prompt, and each answer is supervised
through its end-of-turn token.

Accepted records (chosen/rejected may be a string, an assistant message, or a one-message list):
  {"prompt": "...", "chosen": "...", "rejected": "..."}                       TRL standard
  {"prompt": [messages], "chosen": [{"role": "assistant", ...}], "rejected": [...]}   TRL conversational
  {"messages": [...], "chosen": ..., "rejected": ...}                          OpenAI messages + pair
  {"instruction": "...", "input": "...", "chosen": "...", "rejected": "..."}   LLaMA-Factory alpaca
  {"conversations": [...], "chosen": {"from": "gpt", "value": ...}, "rejected": {...}}   LLaMA-Factory ShareGPT
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seektune.data.batching import Row, collate
from seektune.data.formats import (Conversation, ReadReport, SHAREGPT_ROLES, normalise, read_checked,
                                   validate_conversation)
from seektune.data.reasoning import MESSAGE_FIELDS, assistant_message
from seektune.data.render import IGNORE, Renderer


@dataclass
class PreferenceRecord:
    where: str
    prompt: Conversation
    chosen: dict
    rejected: dict


@dataclass
class PairRow:
    """A chosen and a rejected sample of one prompt; one unit of a preference loss."""

    chosen: Row
    rejected: Row

    @property
    def supervised(self) -> int:
        return 1


def _answer(value: object, side: str, reasoning_field: str | None, record: dict) -> dict:
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError(f"{side} must hold exactly one assistant message, got {len(value)}")
        value = value[0]
    if isinstance(value, dict):
        role = value.get("role", value.get("from"))
        if SHAREGPT_ROLES.get(role) != "assistant":
            raise ValueError(f"{side} must be an assistant answer, got role {role!r}")
        text = value.get("content", value.get("value"))
        reasoning = next((value[k] for k in MESSAGE_FIELDS if value.get(k) is not None), None)
    else:
        text, reasoning = value, None
    if not isinstance(text, str):
        raise ValueError(f"{side} must be a string or an assistant message")
    if reasoning is None and reasoning_field:
        reasoning = record.get(f"{side}_{reasoning_field}")
    message = assistant_message(text, reasoning, side)
    if not message["content"].strip():
        raise ValueError(f"{side} is empty")
    return message


def _prompt(record: dict, system_prompt: str | None) -> Conversation:
    """The prompt messages, read by the SFT reader with a placeholder answer appended (and then removed), so
    every format rule and error message is the same as for SFT records."""
    placeholder = {"role": "assistant", "content": "-"}
    if "prompt" in record:
        prompt = record["prompt"]
        turns = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        shaped = {"messages": [*turns, placeholder]}
    elif isinstance(record.get("messages"), list):
        shaped = {"messages": [*record["messages"], placeholder]}
    elif isinstance(record.get("conversations"), list):
        shaped = {"conversations": [*record["conversations"], {"from": "gpt", "value": "-"}]}
    elif "instruction" in record:
        shaped = {**{k: record[k] for k in ("instruction", "input", "system", "history") if k in record},
                  "output": "-"}
    else:
        raise ValueError("a preference pair needs its prompt: prompt, messages, conversations or instruction")
    return normalise(shaped, "auto", system_prompt)[:-1]


def normalise_pair(record: object, system_prompt: str | None = None,
                   reasoning_field: str | None = None) -> tuple[Conversation, dict, dict]:
    """One raw JSON value -> (prompt messages ending with the user's turn, chosen, rejected). Raises ValueError."""
    if not isinstance(record, dict):
        raise ValueError(f"record must be a JSON object, got {type(record).__name__}")
    for side in ("chosen", "rejected"):
        if side not in record:
            raise ValueError(f"missing field {side!r} for a preference pair")
    prompt = _prompt(record, system_prompt)
    chosen = _answer(record["chosen"], "chosen", reasoning_field, record)
    rejected = _answer(record["rejected"], "rejected", reasoning_field, record)
    if (chosen["content"], chosen.get("reasoning")) == (rejected["content"], rejected.get("reasoning")):
        raise ValueError("chosen and rejected are identical: the pair teaches nothing")
    validate_conversation([*prompt, chosen])
    return prompt, chosen, rejected


def read_pairs(path: str | Path, system_prompt: str | None = None, on_error: str = "raise",
               report: ReadReport | None = None, reasoning_field: str | None = None) -> list[PreferenceRecord]:
    def parse(value: object, where: str) -> PreferenceRecord:
        return PreferenceRecord(where, *normalise_pair(value, system_prompt, reasoning_field))

    return read_checked(path, parse, on_error, report)


def render_pair(renderer: Renderer, record: PreferenceRecord) -> PairRow | None:
    """Both answers after the same prompt, each supervised alone (earlier turns are context); None when an answer
    was dropped as too long."""
    rows = []
    for answer in (record.chosen, record.rejected):
        samples = renderer.conversation([*record.prompt, answer], record.where)
        if not samples:
            return None
        sample = samples[-1]
        supervised_from = next(i for i, t in enumerate(sample.targets) if t != IGNORE)
        targets = [IGNORE] * supervised_from + sample.targets[supervised_from:]
        rows.append(Row(sample.input_ids, targets, list(range(len(sample.input_ids)))))
    return PairRow(*rows)


def collate_pairs(rows: list[PairRow], pad_id: int) -> dict:
    """One padded batch: the chosen answers in the first half, the rejected ones in the second."""
    return collate([r.chosen for r in rows] + [r.rejected for r in rows], pad_id, packed=False)
