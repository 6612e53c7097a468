"""Stream records in and out: JSONL or a (possibly truncated) JSON array, never the whole file in memory.

Every record carries `where` ("file:line") so a bad record is reported where it is. Encodings: UTF-8 (a BOM
is accepted) by default, anything Python knows (gbk, gb18030, ...) by name.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Literal

from seektune.errors import DataError

OnError = Literal["raise", "skip"]
_CHUNK = 1 << 20


@dataclass
class Tally:
    """Counts of one step: records in, out, and removed per reason; and where each reason first occurred."""

    records_in: int = 0
    records_out: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)

    def remove(self, reason: str, where: str = "", n: int = 1, detail: str = "") -> None:
        """Count a removal under `reason`; keep the first place (and detail) each reason happened."""
        self.removed[reason] = self.removed.get(reason, 0) + n
        if where and reason not in self.first and len(self.first) < 50:
            self.first[reason] = where + (f": {detail}" if detail else "")

    def as_dict(self) -> dict:
        return {"in": self.records_in, "out": self.records_out, "removed": dict(sorted(self.removed.items())),
                "first_seen": self.first}


@dataclass
class Item:
    where: str
    record: dict


CLI_ENCODING_HINT = "pass --encoding gbk (or the file's real encoding), or convert the file to UTF-8"


def _bad(path: Path, line: int, reason: str) -> DataError:
    return DataError(f"{path}:{line}: {reason}")


def _decoder(encoding: str):
    name = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    return codecs.getincrementaldecoder(name)()


def _iter_lines(path: Path, encoding: str, hint: str) -> Iterator[tuple[int, str]]:
    decoder = _decoder(encoding)
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                yield number, decoder.decode(raw)
            except UnicodeDecodeError as exc:
                raise _bad(path, number, f"not valid {encoding} (byte {exc.start} of the line); {hint}") from None


def _iter_array(path: Path, encoding: str, hint: str) -> Iterator[tuple[int, object]]:
    """Yield the elements of a top-level JSON array one by one; a truncated tail becomes a DataError."""
    decoder, parser = _decoder(encoding), json.JSONDecoder()
    buffer, line, offset, started, eof = "", 1, 0, False, False  # offset: characters consumed before buffer
    with path.open("rb") as fh:
        while True:
            stripped = buffer.lstrip(" \t\r\n,")
            skipped = buffer[: len(buffer) - len(stripped)]
            line, offset, buffer = line + skipped.count("\n"), offset + len(skipped), stripped
            if not started and buffer:
                if not buffer.startswith("["):
                    yield line, _bad(path, line, "expected a JSON array or JSON lines")
                    return
                buffer, offset, started = buffer[1:], offset + 1, True
                continue
            if buffer.startswith("]"):
                return
            if buffer and started:
                try:
                    value, end = parser.raw_decode(buffer)
                except json.JSONDecodeError as exc:
                    if not eof:
                        value = None
                    else:
                        yield line, _bad(path, line, f"invalid JSON from here to the end of the file "
                                         f"(character {offset}, {len(buffer)} characters: {exc.msg}); "
                                         "the file is truncated, every complete record before it was read")
                        return
                else:
                    yield line, value
                    line, offset, buffer = line + buffer.count("\n", 0, end), offset + end, buffer[end:]
                    continue
            if eof:
                if started:
                    yield line, _bad(path, line, "JSON array is not closed (file truncated?)")
                return
            chunk = fh.read(_CHUNK)
            try:
                buffer += decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError:
                raise _bad(path, line, f"not valid {encoding}; {hint}") from None
            eof = not chunk


def _starts_with_array(path: Path, encoding: str) -> bool:
    with path.open("rb") as fh:
        head = fh.read(4096)
    try:
        text = _decoder(encoding).decode(head)
    except UnicodeDecodeError:
        return False
    return text.lstrip().startswith("[")


def read_values(path: str | Path, encoding: str = "utf-8", encoding_hint: str = CLI_ENCODING_HINT
                ) -> Iterator[tuple[int, object]]:
    """(line, parsed JSON or DataError) for each record of a JSONL file or a JSON array file.

    A malformed record yields a DataError in its place, so the caller decides whether to raise or skip; a
    JSON array cut off mid-record yields every complete record first. Undecodable bytes raise at once
    (nothing after them can be trusted), with `encoding_hint` telling the user what to do."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file not found: {path}")
    if _starts_with_array(path, encoding):
        yield from _iter_array(path, encoding, encoding_hint)
        return
    for number, text in _iter_lines(path, encoding, encoding_hint):
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, _bad(path, number, f"invalid JSON: {exc.msg} (column {exc.colno})")


def read_records(paths: Iterable[str | Path], tally: Tally, on_error: OnError = "raise",
                 encoding: str = "utf-8", validate=None) -> Iterator[Item]:
    """Records (JSON objects) of several files in order. `validate(record)` may raise ValueError with a reason."""
    hint = "pass --on-error skip to skip and count bad records"
    for path in paths:
        for line, value in read_values(path, encoding):
            where = f"{path}:{line}"
            reason = None
            if isinstance(value, DataError):
                reason = str(value).split(": ", 1)[-1]
            elif not isinstance(value, dict):
                reason = f"record must be a JSON object, got {type(value).__name__}"
            elif validate is not None:
                try:
                    validate(value)
                except ValueError as exc:
                    reason = str(exc)
            if reason is None:
                tally.records_in += 1
                yield Item(where, value)
                continue
            if on_error == "raise":
                raise DataError(f"{where}: {reason}\n({hint})")
            tally.records_in += 1
            tally.remove(f"bad input: {_category(reason)}", where, detail=reason)


def _category(reason: str) -> str:
    """'turn 12 is 'user', expected ...' and 'turn 2 ...' count as one reason."""
    head = reason.split(" (")[0].split(": ")[0]
    return re.sub(r"\d+", "N", head)
