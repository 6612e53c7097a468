"""From token ids to the text a client sees: incremental decoding, stop strings, and DeepSeek-R1's reasoning
split. Each piece is fed one token's worth at a time and returns only what is safe to send now."""

from __future__ import annotations

from seektune.data.reasoning import THINK_CLOSE, THINK_OPEN


class Detokenizer:
    """Decode as tokens arrive, releasing text only once its bytes form whole characters (the prefix/read offset
    scheme of TGI and vLLM: re-decode a short window, so tokenizers that merge spaces decode right)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix_offset = self.read_offset = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def push(self, token: int) -> str:
        self.ids.append(token)
        before = self._decode(self.ids[self.prefix_offset:self.read_offset])
        after = self._decode(self.ids[self.prefix_offset:])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            return after[len(before):]
        return ""

    def flush(self) -> str:
        """Whatever is still held (an incomplete character at the very end)."""
        before = self._decode(self.ids[self.prefix_offset:self.read_offset])
        after = self._decode(self.ids[self.prefix_offset:])
        self.prefix_offset = self.read_offset = len(self.ids)
        return after[len(before):]


def _held(text: str, markers: list[str]) -> int:
    """Length of the longest end of `text` that could be the start of one of `markers`."""
    best = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:n]):
                best = n
                break
    return best


class StopStrings:
    """OpenAI `stop`: the answer ends before the first stop string, which is never sent. Text that might be the
    start of one is held back until it is clear."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.text, self.sent = "", 0
        self.stopped = False

    def push(self, delta: str) -> str:
        if self.stopped:
            return ""
        self.text += delta
        if not self.stops:
            out, self.sent = self.text[self.sent:], len(self.text)
            return out
        window = max(0, self.sent - max(len(s) for s in self.stops))
        hits = [i for i in (self.text.find(s, window) for s in self.stops) if i >= 0]
        if hits:
            end = min(hits)
            self.stopped = True
        else:
            end = len(self.text) - _held(self.text, self.stops)
        out = self.text[self.sent:max(self.sent, end)]
        self.sent = max(self.sent, end)
        return out

    def flush(self) -> str:
        if self.stopped:
            return ""
        out, self.sent = self.text[self.sent:], len(self.text)
        return out


class ReasoningSplit:
    """DeepSeek-R1 answers `<think>reasoning</think>answer`; like DeepSeek's API, the reasoning goes to
    `reasoning_content` and only the answer to `content`. R1's template opens `<think>` in the prompt itself, so
    the split can start inside the reasoning. `push` returns (reasoning delta, content delta)."""

    def __init__(self, opened_in_prompt: bool):
        self.state = "reasoning" if opened_in_prompt else "start"
        self.buffer = ""
        self.fresh = {"reasoning": True, "content": True}   # strip the newlines that follow the markers

    def _emit(self, channel: str, text: str) -> str:
        if self.fresh[channel]:
            text = text.lstrip("\n")
            self.fresh[channel] = not text
        return text

    def push(self, delta: str) -> tuple[str, str]:
        self.buffer += delta
        if self.state == "start":
            head = self.buffer.lstrip()
            if head.startswith(THINK_OPEN):
                self.state, self.buffer = "reasoning", head[len(THINK_OPEN):]
            elif THINK_OPEN.startswith(head):
                return "", ""
            else:
                self.state = "content"
        if self.state == "reasoning":
            if THINK_CLOSE in self.buffer:
                thought, _, rest = self.buffer.partition(THINK_CLOSE)
                self.state, self.buffer = "content", ""
                return self._emit("reasoning", thought), self._emit("content", rest)
            keep = _held(self.buffer, [THINK_CLOSE])
            out, self.buffer = self.buffer[:len(self.buffer) - keep], self.buffer[len(self.buffer) - keep:]
            return self._emit("reasoning", out), ""
        out, self.buffer = self.buffer, ""
        return "", self._emit("content", out)

    def flush(self) -> tuple[str, str]:
        out, self.buffer = self.buffer, ""
        if self.state == "reasoning":
            return self._emit("reasoning", out), ""
        return "", self._emit("content", out)


class TextStream:
    """One request's output pipeline: tokens -> text -> stop strings -> (reasoning, content) deltas."""

    def __init__(self, tokenizer, stops: list[str], reasoning: ReasoningSplit | None = None):
        self.detok = Detokenizer(tokenizer)
        self.stop = StopStrings(stops)
        self.reasoning = reasoning

    @property
    def stopped(self) -> bool:
        """A stop string was seen: the caller cancels generation and finishes with reason 'stop'."""
        return self.stop.stopped

    def _split(self, text: str, final: bool) -> tuple[str, str]:
        if self.reasoning is None:
            return "", text
        thought, content = self.reasoning.push(text)
        if final:
            more_thought, more_content = self.reasoning.flush()
            thought, content = thought + more_thought, content + more_content
        return thought, content

    def push(self, token: int) -> tuple[str, str]:
        return self._split(self.stop.push(self.detok.push(token)), final=False)

    def finish(self) -> tuple[str, str]:
        text = self.stop.push(self.detok.flush())
        return self._split(text + self.stop.flush(), final=True)
