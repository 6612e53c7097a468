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

Reasoning (an assistant message's "reasoning" key, see data/reasoning.py) is written in the template's own
shape: after R1/V3's opener as `{reasoning}\\n</think>\\n\\n{answer}`; through the template itself when it renders
`reasoning_content` (Qwen3); inline as `<think>\\n{reasoning}\\n</think>\\n\\n{answer}` for templates that know
nothing of reasoning. It is trained on, kept as unsupervised context (`mask`), or dropped.

Images (vision-language models): each `<image>` placeholder is written as the model's image text before the
template renders, tokenised with the rest of its piece, and its image token then repeated as many times as the
image fills positions (the processor's count); those positions never carry a target. Training and inference
expand the same way, so a sample's prefix is still token for token the inference prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seektune.data.formats import Conversation
from seektune.data.images import PLACEHOLDER, ImageTokens
from seektune.data.reasoning import THINK_CLOSE, THINK_OPEN, Mode, split_inline
from seektune.data.terms import TermMatcher, token_weights
from seektune.errors import DataError

IGNORE = -100
_SENTINEL = "\u2063SEEKTUNE_ANSWER\u2063"
_REASONING_SENTINEL = "\u2063SEEKTUNE_REASONING\u2063"


@dataclass
class Sample:
    """Token ids and next-token targets (already shifted: targets[t] is what position t must predict)."""

    input_ids: list[int]
    targets: list[int]
    weights: list[float] | None = None  # per-target loss weight (term-weighted loss); None = all 1
    images: list[str] = field(default_factory=list)   # the images whose tokens the ids hold, in order

    @property
    def supervised(self) -> int:
        return sum(t != IGNORE for t in self.targets)


@dataclass
class RenderStats:
    samples: int = 0
    truncated: int = 0
    dropped_overlength: int = 0
    split_for_template: int = 0
    reasoning_tokens: int = 0
    answer_tokens: int = 0


@dataclass(frozen=True)
class Turn:
    """One assistant turn as text: the prompt inference feeds, then what the model generates (the reasoning
    block `thought`, possibly empty, and the `answer`), then the template's end-of-turn text."""

    prompt: str
    thought: str
    answer: str
    end: str


class Renderer:
    """Turns conversations or plain text into Samples for one tokenizer and max length."""

    def __init__(self, tokenizer, max_length: int, overlength: str = "truncate", train_on: str = "all_assistant",
                 terms: TermMatcher | None = None, term_weight: float = 1.0, reasoning: Mode = "train",
                 images: ImageTokens | None = None):
        if not tokenizer.chat_template:
            raise DataError(
                "the tokenizer has no chat template; set model.chat_template "
                "(deepseek-v3, deepseek-r1, chatml, llama3, qwen2.5, qwen3)"
            )
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.overlength = overlength
        self.train_on = train_on
        self.terms, self.term_weight = terms, term_weight
        self.reasoning = reasoning
        self.images = images
        self.renders_reasoning = self._renders_reasoning()
        if terms is not None and not tokenizer.is_fast:
            raise DataError("train.term_file needs a fast (Rust) tokenizer for character offsets")
        self.stats = RenderStats()

    def _renders_reasoning(self) -> bool:
        """Whether the template writes an assistant message's `reasoning_content` itself (Qwen3 does)."""
        probe = [{"role": "user", "content": "q"},
                 {"role": "assistant", "content": _SENTINEL, "reasoning_content": _REASONING_SENTINEL}]
        try:
            return _REASONING_SENTINEL in self.render_text(probe, False)
        except Exception:  # a template that refuses this probe (e.g. it requires a system turn) does not
            return False

    def render_text(self, messages: Conversation, generation_prompt: bool) -> str:
        """The template's text for `messages` (with the generation prompt when asked)."""
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )

    def answer_parts(self, history: Conversation, answer: str, reasoning: str | None = None) -> Turn:
        """One assistant turn after `history`, with `reasoning` (or reasoning inline in `answer`) in the
        template's own shape; `drop` mode leaves it out."""
        if reasoning is None:
            reasoning, answer = split_inline(answer)
        if self.reasoning == "drop":
            reasoning = None
        history = history_messages(history)
        prompt = self.render_text(history, True)
        turn = {"role": "assistant", "content": _SENTINEL}
        if self.renders_reasoning and reasoning:
            turn["reasoning_content"] = reasoning
        shaped = self.render_text([*history, turn], False)
        if shaped.count(_SENTINEL) != 1:
            raise DataError("the chat template does not render assistant content verbatim")
        before, after = shaped.split(_SENTINEL)
        # `after` is the end-of-turn marker plus separator whitespace; a template with none ends on EOS
        end = after if after.strip() else (self.tokenizer.eos_token or "")
        if before.startswith(prompt):   # the template writes any reasoning block itself (Qwen3), or there is none
            thought = before[len(prompt):]
            if not thought and reasoning:   # a template that knows nothing of reasoning: inline, R1's shape
                thought = f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n"
            return Turn(prompt, thought, answer, end)
        if not prompt.startswith(before):
            raise DataError("the chat template's generation prompt does not match how it renders answers")
        opener = prompt[len(before):]  # e.g. R1's "<think>\n" that the prompt already contains
        if opener.strip() != THINK_OPEN:
            if reasoning:
                raise DataError(f"this template's prompt ends with {opener!r}, not a think block: there is no "
                                "place for the reasoning (set data.reasoning: drop, or use a template that has one)")
            if not answer.startswith(opener):
                raise DataError(f"answers must start with {opener!r}, which this template's prompt ends with")
            return Turn(prompt, "", answer[len(opener):], end)
        return Turn(prompt, f"{reasoning or ''}\n{THINK_CLOSE}\n\n", answer, end)

    def _segments(self, messages: Conversation, turns: list[int]) -> list[tuple[str, bool, str]] | None:
        """(text, supervised, kind) pieces with all `turns` in one sequence; None if the template is not
        prefix-preserving. Kinds: prompt, thought, answer, end. The first turn's prompt is pieced exactly as
        inference pieces it (`prompt_pieces`)."""
        text, segments = "", []
        for i in turns:
            turn = self.answer_parts(messages[:i], messages[i]["content"], messages[i].get("reasoning"))
            if not turn.prompt.startswith(text):
                return None
            marker = turn.end.rstrip()  # the end-of-turn token is learned; separator whitespace after it is context
            prompt = [turn.prompt[len(text):]] if text else self.prompt_pieces(messages[:i])
            segments += [(piece, False, "prompt") for piece in prompt]
            segments += [(turn.thought, self.reasoning != "mask", "thought"), (turn.answer + marker, True, "answer"),
                         (turn.end[len(marker):], False, "end")]
            text = turn.prompt + turn.thought + turn.answer + turn.end
        return segments

    def prompt_pieces(self, messages: Conversation) -> list[str]:
        """The prompt for the next assistant turn in the pieces it is tokenised in, training and inference alike:
        the history as a later turn sees it (answers without reasoning), pieced turn by turn where the template
        is prefix-preserving, else whole; then the generation prompt."""
        history = history_messages(messages)
        turns = [i for i, m in enumerate(history) if m["role"] == "assistant"]
        joined = self._segments([*history, {"role": "assistant", "content": ""}], [*turns, len(history)]) \
            if turns else None
        if joined is None:
            return [self.render_text(history, True)]
        pieces: list[str] = []
        last_kind = ""
        for text, _, kind in joined[:-3]:   # up to the final prompt; a history turn's reasoning block + answer join
            if kind == "answer" and last_kind == "thought":
                pieces[-1] += text
            else:
                pieces.append(text)
            last_kind = kind
        return [p for p in pieces if p]

    def _encode(self, segments: list[tuple[str, bool, str]], where: str, images: list[str] = ()) -> Sample | None:
        """Tokenise each piece on its own, so the prompt's tokens are exactly those inference will feed
        (tokenising the whole text can merge across the prompt/answer boundary, e.g. R1's '<think>\\n' + '\\n').
        A supervised reasoning block and its answer are one piece: the model generates them as one text."""
        for text, _, kind in segments:
            if kind == "thought" and text.replace(THINK_OPEN, "").replace(THINK_CLOSE, "").strip():
                self.stats.reasoning_tokens += len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            elif kind == "answer":
                self.stats.answer_tokens += len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        ids: list[int] = []
        labels: list[int] = []
        weights: list[float] = []
        for text, supervised, _ in _merged(segments):
            if not text:
                continue
            weighted = supervised and self.terms is not None
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=weighted)
            piece = enc["input_ids"]
            ids += piece
            labels += piece if supervised else [IGNORE] * len(piece)
            weights += (token_weights(enc["offset_mapping"], self.terms.spans(text), self.term_weight) if weighted
                        else [1.0] * len(piece))
        ids, labels, weights, runs = self._expand_images(ids, labels, weights, list(images), where)
        return self._finish(ids, labels, where, weights if self.terms is not None else None, runs, list(images))

    def _expand_images(self, ids: list[int], labels: list[int], weights: list[float], images: list[str],
                       where: str) -> tuple[list[int], list[int], list[float], list[int]]:
        """Each image token repeated to the positions its image fills, unsupervised; also the run lengths."""
        if self.images is None:
            if images:
                raise DataError(f"{where}: the record has {len(images)} image(s) but the model reads text only (use "
                                "a vision-language model, e.g. one made with `seektune vision assemble`)")
            return ids, labels, weights, []
        token, runs = self.images.token_id, []
        out_ids, out_labels, out_weights = [], [], []
        for t, label, w in zip(ids, labels, weights):
            if t != token:
                out_ids.append(t), out_labels.append(label), out_weights.append(w)
                continue
            if len(runs) == len(images):
                raise DataError(f"{where}: more image tokens than images ({len(images)}): does the text hold the "
                                f"image token {self.images.token!r} itself?")
            if label != IGNORE:
                raise DataError(f"{where}: an image token in a supervised answer")
            runs.append(self.images.count(images[len(runs)]))
            out_ids += [t] * runs[-1]
            out_labels += [IGNORE] * runs[-1]
            out_weights += [1.0] * runs[-1]
        if len(runs) != len(images):
            raise DataError(f"{where}: {len(images)} image(s) but {len(runs)} image token(s) after rendering: the "
                            "chat template dropped a placeholder")
        return out_ids, out_labels, out_weights, runs

    def _finish(self, ids: list[int], labels: list[int], where: str,
                weights: list[float] | None = None, runs: list[int] = (), images: list[str] = ()) -> Sample | None:
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
            if runs and _kept_images(ids, self.images.token_id, runs) is None:   # the cut went through an image
                self.stats.dropped_overlength += 1
                return None
            self.stats.truncated += 1
        if all(t == IGNORE for t in targets):
            self.stats.dropped_overlength += 1
            return None
        self.stats.samples += 1
        kept = _kept_images(ids, self.images.token_id, runs) if runs else 0
        return Sample(ids, targets, shifted, list(images[:kept]))

    def prompt_ids(self, messages: Conversation, images: list[str] = ()) -> list[int]:
        """The prompt for the next assistant turn, token for token as training fed it (see prompt_pieces), its
        images' tokens expanded as in training."""
        messages = self._image_text(messages)
        ids = [i for text in self.prompt_pieces(messages)
               for i in self.tokenizer(text, add_special_tokens=False)["input_ids"]]
        return self._expand_images(ids, [IGNORE] * len(ids), [1.0] * len(ids), list(images), "prompt")[0]

    def _image_text(self, messages: Conversation) -> Conversation:
        """Placeholders written as the model's image text (LLaVA's `<image>`, Qwen2-VL's vision block)."""
        if self.images is None or self.images.token == PLACEHOLDER:
            return messages
        return [{**m, "content": m["content"].replace(PLACEHOLDER, self.images.token)} for m in messages]

    def conversation(self, messages: Conversation, where: str = "<memory>", images: list[str] = ()) -> list[Sample]:
        assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        turns = assistant[-1:] if self.train_on == "last_assistant" else assistant
        shown = {i: _images_in(messages, i, images) for i in turns}
        messages = self._image_text(messages)
        joined = self._segments(messages, turns)
        if joined is not None:
            sample = self._encode(joined, where, shown[turns[-1]])
            return [sample] if sample else []
        self.stats.split_for_template += 1
        out = []
        for i in turns:
            single = self._segments(messages, [i])
            assert single is not None  # one turn is always a prompt plus its answer
            sample = self._encode(single, where, shown[i])
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


def _images_in(messages: Conversation, last_turn: int, images: list[str]) -> list[str]:
    """The images a sample ending at assistant turn `last_turn` shows: those placed before it."""
    if not images:
        return []
    placed = sum(m["content"].count(PLACEHOLDER) for m in messages[:last_turn])
    return list(images[:placed]) if placed else []


def _kept_images(ids: list[int], token_id: int, runs: list[int]) -> int | None:
    """How many whole images `ids` (maybe truncated) still holds; None when an image was cut through."""
    present, total = sum(t == token_id for t in ids), 0
    for k, n in enumerate(runs):
        if present == total:
            return k
        total += n
    return len(runs) if present == total else None


def history_messages(messages: Conversation) -> Conversation:
    """Messages as the history of a later turn: role and content only, assistant answers without their
    reasoning (separate or inline), so no template can show an earlier turn's thinking to a later one."""
    out = []
    for m in messages:
        content = m["content"]
        if m["role"] == "assistant":
            try:
                content = split_inline(content)[1]
            except ValueError:
                pass   # malformed traces are the reader's to report; the text stays as it is
        out.append({"role": m["role"], "content": content})
    return out


def _merged(segments: list[tuple[str, bool, str]]) -> list[tuple[str, bool, str]]:
    """A reasoning block joins its answer when both are supervised (one generated text, one tokenisation)."""
    out: list[tuple[str, bool, str]] = []
    for text, supervised, kind in segments:
        if out and out[-1][2] == "thought" and kind == "answer" and out[-1][1] == supervised:
            out[-1] = (out[-1][0] + text, supervised, kind)
        else:
            out.append((text, supervised, kind))
    return out


def end_of_turn_ids(tokenizer) -> list[int]:
    """Token ids that end an assistant turn under this tokenizer's template; generation stops on any of them."""
    renderer = Renderer(tokenizer, max_length=1 << 30)
    end = renderer.answer_parts([{"role": "user", "content": "hi"}], "ok").end
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    end_ids = tokenizer(end.strip(), add_special_tokens=False)["input_ids"]
    if len(end_ids) == 1:
        ids.add(end_ids[0])
    return sorted(ids)
