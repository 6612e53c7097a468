"""Render conversations with the tokenizer's own chat template and mark exactly what the model must learn.

For every supervised assistant turn we render the prompt the model will see at inference
(`add_generation_prompt=True`) and the same history followed by the answer; the answer span is what the
second adds to the first, through the end-of-turn token. Prompt and answer pieces are tokenised separately so
the training prefix is token-for-token the inference prompt.

Templates that rewrite earlier turns (DeepSeek-R1 drops `<think>` from the history) are not prefix-
preserving: one sequence cannot show turn 1 both with its reasoning (as a target) and without it (as later
history). Such conversations become one sample per assistant turn, each exactly as inference sees it.
A generation prompt that opens the answer (R1's `<think>\\n`) moves into the prompt; an answer that lacks
the opener gets an empty reasoning block, as DeepSeek does for non-reasoning data.
"""

from __future__ import annotations

from dataclasses import dataclass

from seektune.data.formats import Conversation
from seektune.data.terms import TermMatcher, token_weights
from seektune.errors import DataError

IGNORE = -100
_SENTINEL = "\u2063SEEKTUNE_ANSWER\u2063"


@dataclass
class Sample:
    """Token ids and next-token targets (already shifted: targets[t] is what position t must predict)."""

    input_ids: list[int]
    targets: list[int]
    weights: list[float] | None = None  # per-target loss weight (term-weighted loss); None = all 1

    @property
    def supervised(self) -> int:
        return sum(t != IGNORE for t in self.targets)


@dataclass
class RenderStats:
    samples: int = 0
    truncated: int = 0
    dropped_overlength: int = 0
    split_for_template: int = 0


class Renderer:
    """Turns conversations or plain text into Samples for one tokenizer and max length."""

    def __init__(self, tokenizer, max_length: int, overlength: str = "truncate", train_on: str = "all_assistant",
                 terms: TermMatcher | None = None, term_weight: float = 1.0):
        if not tokenizer.chat_template:
            raise DataError(
                "the tokenizer has no chat template; set model.chat_template "
                "(deepseek-v3, deepseek-r1, chatml, llama3, qwen2.5)"
            )
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.overlength = overlength
        self.train_on = train_on
        self.terms, self.term_weight = terms, term_weight
        if terms is not None and not tokenizer.is_fast:
            raise DataError("train.term_file needs a fast (Rust) tokenizer for character offsets")
        self.stats = RenderStats()

    def _render(self, messages: Conversation, generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )

    def answer_parts(self, history: Conversation, answer: str) -> tuple[str, str, str]:
        """(prompt, answer text the model generates, end-of-turn text) for one assistant turn."""
        prompt = self._render(history, True)
        shaped = self._render([*history, {"role": "assistant", "content": _SENTINEL}], False)
        if shaped.count(_SENTINEL) != 1:
            raise DataError("the chat template does not render assistant content verbatim")
        before, after = shaped.split(_SENTINEL)
        if not prompt.startswith(before):
            raise DataError("the chat template's generation prompt does not match how it renders answers")
        opener = prompt[len(before):]  # e.g. R1's "<think>\n" that the prompt already contains
        if opener and not answer.startswith(opener):
            if opener.strip() != "<think>":
                raise DataError(f"answers must start with {opener!r}, which this template's prompt ends with")
            answer = f"{opener}\n</think>\n\n{answer}"
        # `after` is the end-of-turn marker plus separator whitespace; a template with none ends on EOS
        end = after if after.strip() else (self.tokenizer.eos_token or "")
        return prompt, answer[len(opener):], end

    def _segments(self, messages: Conversation, turns: list[int]) -> list[tuple[str, bool]] | None:
        """(text, supervised) pieces with all `turns` in one sequence; None if the template is not prefix-preserving."""
        text, segments = "", []
        for i in turns:
            prompt, answer, end = self.answer_parts(messages[:i], messages[i]["content"])
            if not prompt.startswith(text):
                return None
            marker = end.rstrip()  # the end-of-turn token is learned; separator whitespace after it is context
            segments += [(prompt[len(text):], False), (answer + marker, True), (end[len(marker):], False)]
            text = prompt + answer + end
        return segments

    def _encode(self, segments: list[tuple[str, bool]], where: str) -> Sample | None:
        """Tokenise each piece on its own, so the prompt's tokens are exactly those inference will feed
        (tokenising the whole text can merge across the prompt/answer boundary, e.g. R1's '<think>\\n' + '\\n')."""
        ids: list[int] = []
        labels: list[int] = []
        weights: list[float] = []
        for text, supervised in segments:
            if not text:
                continue
            weighted = supervised and self.terms is not None
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=weighted)
            piece = enc["input_ids"]
            ids += piece
            labels += piece if supervised else [IGNORE] * len(piece)
            weights += (token_weights(enc["offset_mapping"], self.terms.spans(text), self.term_weight) if weighted
                        else [1.0] * len(piece))
        return self._finish(ids, labels, where, weights if self.terms is not None else None)

    def _finish(self, ids: list[int], labels: list[int], where: str,
                weights: list[float] | None = None) -> Sample | None:
        targets = labels[1:] + [IGNORE]
        shifted = weights[1:] + [1.0] if weights is not None else None  # the weight of the token being predicted
        if len(ids) > self.max_length:
            if self.overlength == "error":
                raise DataError(f"{where}: {len(ids)} tokens > data.max_length={self.max_length} "
                                "(set data.overlength to truncate or drop)")
            if self.overlength == "drop":
                self.stats.dropped_overlength += 1
                return None
            ids, targets = ids[: self.max_length], targets[: self.max_length]
            shifted = shifted[: self.max_length] if shifted is not None else None
            self.stats.truncated += 1
        if all(t == IGNORE for t in targets):
            self.stats.dropped_overlength += 1
            return None
        self.stats.samples += 1
        return Sample(ids, targets, shifted)

    def prompt_ids(self, messages: Conversation) -> list[int]:
        """The prompt for the next assistant turn, token for token as training fed it: earlier turns pieced and
        tokenised as `conversation` does (per turn for templates that rewrite history), then the generation prompt."""
        turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        joined = self._segments([*messages, {"role": "assistant", "content": ""}], [*turns, len(messages)])
        pieces = [text for text, _ in joined[:-2]] if joined is not None else [self._render(messages, True)]
        return [i for text in pieces if text for i in self.tokenizer(text, add_special_tokens=False)["input_ids"]]

    def conversation(self, messages: Conversation, where: str = "<memory>") -> list[Sample]:
        assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        turns = assistant[-1:] if self.train_on == "last_assistant" else assistant
        joined = self._segments(messages, turns)
        if joined is not None:
            sample = self._encode(joined, where)
            return [sample] if sample else []
        self.stats.split_for_template += 1
        out = []
        for i in turns:
            single = self._segments(messages, [i])
            assert single is not None  # one turn is always a prompt plus its answer
            sample = self._encode(single, where)
            if sample:
                out.append(sample)
        return out

    def text(self, text: str, where: str = "<memory>") -> list[Sample]:
        """Continued pre-training: every token is a target; long documents become consecutive windows."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if self.tokenizer.eos_token_id is not None:
            ids = ids + [self.tokenizer.eos_token_id]
        out = []
        for start in range(0, len(ids), self.max_length):
            window = ids[start: start + self.max_length]
            if len(window) < 2:
                continue
            self.stats.samples += 1
            out.append(Sample(window, window[1:] + [IGNORE]))
        return out


def end_of_turn_ids(tokenizer) -> list[int]:
    """Token ids that end an assistant turn under this tokenizer's template; generation stops on any of them."""
    renderer = Renderer(tokenizer, max_length=1 << 30)
    _, _, end = renderer.answer_parts([{"role": "user", "content": "hi"}], "ok")
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    end_ids = tokenizer(end.strip(), add_special_tokens=False)["input_ids"]
    if len(end_ids) == 1:
        ids.add(end_ids[0])
    return sorted(ids)
