"""Read alpaca, ShareGPT, OpenAI-messages and plain-text records from JSON or JSONL into one shape.

A conversation is a list of {"role": system|user|assistant, "content": str}; an assistant message may also
hold "reasoning" (see data/reasoning.py: every shape of R1-style reasoning is read into that one key). A text
record is a str. Every record keeps its file and line so errors point at the exact place.

Images (data/images.py): a record's `images` list (ShareGPT / alpaca, LLaMA-Factory's shape) with `<image>`
placeholders in user turns, or OpenAI content parts (`{"type": "image_url", "image_url": {"url": ...}}`, or
`{"type": "image", "image": ...}`) that become placeholders in the text; a record with images and no
placeholder gets them in front of its first user turn. An image-caption pair (`{"image": ..., "text": ...}`)
is the conversation [image] -> caption (LLaVA's projector pre-training data). Each image is checked (exists,
readable) when read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, TypeVar, Union

from seektune.data import images as image_refs
from seektune.data.images import PLACEHOLDER
from seektune.data.jsonio import read_values
from seektune.data.reasoning import MESSAGE_FIELDS, assistant_message
from seektune.errors import DataError

T = TypeVar("T")

_ENCODING_HINT = "convert the file to UTF-8 (for GBK: iconv -f GBK -t UTF-8)"

Message = dict[str, str]
Conversation = list[Message]
Format = Literal["auto", "alpaca", "sharegpt", "openai", "text"]

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "model": "assistant",
                  "system": "system"}


@dataclass
class Record:
    where: str  # "file:line"
    content: Union[Conversation, str]
    images: list[str] = field(default_factory=list)   # absolute paths or data URLs, in placeholder order


@dataclass
class ReadReport:
    """What happened to each record: read, and skipped with a reason (only under on_error=skip)."""

    read: int = 0
    skipped: Counter = field(default_factory=Counter)
    first_skips: list[str] = field(default_factory=list)

    def skip(self, where: str, reason: str) -> None:
        self.skipped[reason.split(":")[0]] += 1
        if len(self.first_skips) < 5:
            self.first_skips.append(f"{where}: {reason}")


def detect_format(record: dict) -> Format:
    if "messages" in record:
        return "openai"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if "text" in record:
        return "text"
    raise ValueError(f"unknown record format: keys {sorted(record)[:8]}; expected alpaca, sharegpt, messages or text")


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    return value


def _separate_reasoning(message: dict) -> object:
    return next((message[k] for k in MESSAGE_FIELDS if message.get(k) is not None), None)


def _turn(role: str, content: str, reasoning: object = None, where: str = "answer") -> dict:
    """A message of the internal form: assistant answers split from their reasoning, other roles as they are."""
    if role == "assistant":
        return assistant_message(content, reasoning, where)
    if reasoning is not None:
        raise ValueError(f"{where}: reasoning on a {role} message")
    return {"role": role, "content": content}


def _from_alpaca(record: dict, reasoning_field: str | None = None) -> Conversation:
    messages: Conversation = []
    if record.get("system"):
        messages.append({"role": "system", "content": _text(record["system"], "system")})
    for pair in record.get("history") or []:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ValueError("history must be a list of [question, answer] pairs")
        messages += [{"role": "user", "content": _text(pair[0], "history question")},
                     assistant_message(_text(pair[1], "history answer"), where="history answer")]
    prompt = _text(record["instruction"], "instruction")
    extra = record.get("input") or ""
    if extra:
        prompt = f"{prompt}\n\n{_text(extra, 'input')}"
    reasoning = record.get(reasoning_field) if reasoning_field else None
    messages += [{"role": "user", "content": prompt},
                 assistant_message(_text(record["output"], "output"), reasoning, "output")]
    return messages


def _from_sharegpt(record: dict, reasoning_field: str | None = None) -> Conversation:
    turns = record["conversations"]
    if not isinstance(turns, list):
        raise ValueError("conversations must be a list")
    messages: Conversation = []
    if record.get("system"):
        messages.append({"role": "system", "content": _text(record["system"], "system")})
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise ValueError(f"conversations[{i}] must be an object")
        speaker = turn.get("from", turn.get("role"))
        if speaker not in SHAREGPT_ROLES:
            raise ValueError(f"conversations[{i}]: unknown role {speaker!r}; expected one of {sorted(SHAREGPT_ROLES)}")
        content = turn.get("value", turn.get("content"))
        messages.append(_turn(SHAREGPT_ROLES[speaker], _text(content, f"conversations[{i}] text"),
                              _separate_reasoning(turn), f"conversations[{i}]"))
    return messages


_IMAGE_PARTS = ("image_url", "image")


def content_text(content: object, what: str) -> str:
    """OpenAI content: a string, or a list of parts whose texts join and whose images become placeholders (a
    newline after one that text follows, as LLaVA's own template writes them)."""
    if not isinstance(content, list):
        return _text(content, what)
    pieces = []
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            pieces.append(_text(part.get("text"), f"{what}[{k}].text"))
        elif kind in _IMAGE_PARTS:
            pieces.append(PLACEHOLDER + ("\n" if k + 1 < len(content) else ""))
        else:
            raise ValueError(f"{what}[{k}]: content parts must be text, image_url or image, got {kind!r}")
    return "".join(pieces)


def _openai_image_refs(record: dict) -> list[object]:
    """The image references of OpenAI content parts, in order."""
    refs = []
    for m in record.get("messages") or []:
        parts = m.get("content") if isinstance(m, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict) and part.get("type") in _IMAGE_PARTS:
                refs.append(part.get(part["type"]))
    return refs


def _from_openai(record: dict, reasoning_field: str | None = None) -> Conversation:
    messages = record["messages"]
    if not isinstance(messages, list):
        raise ValueError("messages must be a list")
    out: Conversation = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            role = m.get("role") if isinstance(m, dict) else m
            raise ValueError(f"messages[{i}]: role must be system, user or assistant, got {role!r}")
        out.append(_turn(m["role"], content_text(m.get("content"), f"messages[{i}].content"),
                         _separate_reasoning(m), f"messages[{i}]"))
    return out


def raw_images(record: dict) -> list[object]:
    """A record's image references as written: its `images` list (or one `image`), then OpenAI image parts."""
    listed = record.get("images", [record["image"]] if "image" in record else [])
    if not isinstance(listed, list):
        raise ValueError("images must be a list of file paths or data URLs")
    return [*listed, *_openai_image_refs(record)]


def attach_images(messages: Conversation, refs: list[object], base_dir: Path) -> tuple[Conversation, list[str]]:
    """The conversation with one placeholder per image (prepended to the first user turn when it has none) and
    the images resolved and checked; raises ValueError when counts differ or an image cannot be read."""
    placed = sum(m["content"].count(PLACEHOLDER) for m in messages)
    if any(PLACEHOLDER in m["content"] for m in messages if m["role"] == "assistant"):
        raise ValueError(f"{PLACEHOLDER} in an assistant turn: images go in user turns (the model reads them, it "
                         "does not write them)")
    if refs and not placed:
        first = next(i for i, m in enumerate(messages) if m["role"] == "user")
        messages = [*messages]
        messages[first] = {**messages[first], "content": PLACEHOLDER * len(refs) + "\n" + messages[first]["content"]}
        placed = len(refs)
    if placed != len(refs):
        raise ValueError(f"{placed} {PLACEHOLDER} placeholder(s) but {len(refs)} image(s): each image needs one "
                         "placeholder where it stands in the text")
    resolved = [image_refs.resolve(ref, base_dir, f"images[{k}]") for k, ref in enumerate(refs)]
    for ref in resolved:
        image_refs.probe(ref)
    return messages, resolved


def validate_conversation(messages: Conversation) -> Conversation:
    """System turns only first; then user/assistant alternate, starting with user; at least one answer."""
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if any(m["role"] == "system" for m in body):
        raise ValueError("a system message may only come first")
    for i, m in enumerate(body):
        expected = "user" if i % 2 == 0 else "assistant"
        if m["role"] != expected:
            raise ValueError(f"turn {i + 1} is {m['role']!r}, expected {expected!r} (turns must alternate)")
    if not any(m["role"] == "assistant" for m in body):
        raise ValueError("no assistant turn to learn from")
    empty = [i + 1 for i, m in enumerate(body) if m["role"] == "assistant" and not m["content"].strip()]
    if empty:
        raise ValueError(f"empty answer in turn {empty[0]} (it would teach the model to stop at once)")
    return messages


def normalise(record: object, fmt: Format, system_prompt: str | None = None,
              reasoning_field: str | None = None) -> Union[Conversation, str]:
    """One raw JSON value -> a validated conversation, or a str for plain text. Raises ValueError with the reason.
    `reasoning_field` names the alpaca column that holds the reasoning (e.g. `reasoning`, `think`)."""
    if not isinstance(record, dict):
        raise ValueError(f"record must be a JSON object, got {type(record).__name__}")
    fmt = detect_format(record) if fmt == "auto" else fmt
    try:
        if fmt == "text":
            return _text(record["text"], "text")
        convert = {"alpaca": _from_alpaca, "sharegpt": _from_sharegpt, "openai": _from_openai}[fmt]
        messages = convert(record, reasoning_field)
    except KeyError as exc:
        raise ValueError(f"missing field {exc.args[0]!r} for {fmt} format") from None
    if system_prompt and not (messages and messages[0]["role"] == "system"):
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return validate_conversation(messages)


def read_checked(path: str | Path, parse: Callable[[object, str], T], on_error: str = "raise",
                 report: ReadReport | None = None) -> list[T]:
    """Every value of one JSON/JSONL file through `parse(value, where)` (which raises ValueError with a reason):
    with on_error=raise the first bad value stops with `file:line: reason`; with skip it is counted in `report`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    report = report if report is not None else ReadReport()
    out: list[T] = []
    for line, value in read_values(path, "UTF-8", _ENCODING_HINT):
        where = f"{path}:{line}"
        if isinstance(value, DataError):
            if on_error == "raise":
                raise DataError(f"{value}\n(set data.on_error=skip to skip and count bad records)")
            report.skip(where, f"invalid JSON: {str(value).split(': ', 1)[-1]}")
            continue
        try:
            out.append(parse(value, where))
        except (ValueError, KeyError) as exc:
            if on_error == "raise":
                raise DataError(f"{where}: {exc}\n(set data.on_error=skip to skip and count bad records)") from None
            report.skip(where, str(exc))
            continue
        report.read += 1
    return out


def read_file(path: str | Path, fmt: Format = "auto", system_prompt: str | None = None,
              on_error: str = "raise", report: ReadReport | None = None,
              reasoning_field: str | None = None) -> list[Record]:
    """Read and normalise every record of one file, images resolved beside it and checked; errors name
    file:line."""
    base_dir = Path(path).resolve().parent

    def parse(value: object, where: str) -> Record:
        content, resolved = with_images(value, normalise(value, fmt, system_prompt, reasoning_field), base_dir)
        return Record(where, content, resolved)

    return read_checked(path, parse, on_error, report)


def with_images(value: object, content: Union[Conversation, str], base_dir: Path) -> tuple[Union[Conversation, str],
                                                                                           list[str]]:
    """A normalised record with its images attached (placeholders placed, files resolved beside the data file
    and checked); an image-caption pair becomes a user turn holding the image and the caption as the answer."""
    refs = raw_images(value) if isinstance(value, dict) else []
    if not refs:
        return content, []
    if isinstance(content, str):   # an image-caption pair: the caption is the answer to the image alone
        if len(refs) != 1:
            raise ValueError(f"an image-caption record holds one image, not {len(refs)}")
        content = [{"role": "user", "content": PLACEHOLDER}, {"role": "assistant", "content": content}]
    return attach_images(content, refs, base_dir)
