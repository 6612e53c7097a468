"""DeepSeek-R1-style reasoning in training data: one parser for every shape it comes in.

Records carry reasoning inline (`<think>...</think>answer`, with any whitespace around the tags), in a separate
`reasoning_content` (DeepSeek's API) or `reasoning` field on a message, or in a column of an alpaca record.
All of them become one internal form: the assistant message's `content` is the answer alone and its `reasoning`
key (absent when there is none) the reasoning. The renderer then writes the pair in the template's own shape.
"""

from __future__ import annotations

from typing import Literal

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
MESSAGE_FIELDS = ("reasoning_content", "reasoning")   # where OpenAI-style dumps put it on a message

Mode = Literal["train", "mask", "drop"]


def split_inline(text: str) -> tuple[str | None, str]:
    """'<think> r </think> answer' -> ('r', 'answer'); text without tags -> (None, text). An empty block is no
    reasoning (DeepSeek writes `<think>\\n\\n</think>` for answers without any). Malformed traces raise
    ValueError saying what is wrong."""
    opens, closes = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if not opens and not closes:
        return None, text
    if opens > 1 or closes > 1:
        raise ValueError(f"two think blocks in one answer ({opens} {THINK_OPEN}, {closes} {THINK_CLOSE})")
    if not closes:
        raise ValueError(f"unclosed {THINK_OPEN} (no {THINK_CLOSE} after the reasoning)")
    if not opens:
        raise ValueError(f"{THINK_CLOSE} without {THINK_OPEN}; if the text before it is the reasoning (R1 outputs "
                         f"whose prompt held the opener), put {THINK_OPEN} at the start")
    before, rest = text.split(THINK_OPEN, 1)
    if THINK_CLOSE not in rest:
        raise ValueError(f"{THINK_CLOSE} comes before {THINK_OPEN}")
    if before.strip():
        raise ValueError(f"text before {THINK_OPEN}: the reasoning must open the answer")
    reasoning, answer = rest.split(THINK_CLOSE, 1)
    return reasoning.strip() or None, answer.lstrip()


def assistant_message(content: str, reasoning: object = None, where: str = "answer") -> dict:
    """The internal assistant message from an answer that may hold inline reasoning and/or a separate one."""
    if reasoning is not None and not isinstance(reasoning, str):
        raise ValueError(f"{where} reasoning must be a string, got {type(reasoning).__name__}")
    inline, answer = split_inline(content)
    separate = reasoning.strip() if reasoning else None
    if inline and separate:
        raise ValueError(f"{where} has reasoning both inline ({THINK_OPEN}...) and in a separate field: two think "
                         "blocks")
    thought = inline or separate
    return {"role": "assistant", "content": answer, **({"reasoning": thought} if thought else {})}


def parse_generated(text: str, opened_in_prompt: bool) -> tuple[str | None, str, bool]:
    """A generated assistant turn -> (reasoning, answer, closed). When the prompt opened the block (R1's
    template), everything before `</think>` is reasoning. A block never closed (the token budget ran out inside
    the reasoning) is all reasoning, with an empty answer and closed=False."""
    body = text.lstrip()
    if opened_in_prompt and not body.startswith(THINK_OPEN):
        body = THINK_OPEN + body
    if not body.startswith(THINK_OPEN):
        return None, text.strip(), True
    rest = body[len(THINK_OPEN):]
    if THINK_CLOSE not in rest:
        return rest.strip() or None, "", False
    reasoning, answer = rest.split(THINK_CLOSE, 1)
    return reasoning.strip() or None, answer.strip(), True


def prompt_opens_reasoning(tokenizer, prompt_ids: list[int]) -> bool:
    """Whether the prompt ends inside an opened reasoning block (R1's generation prompt ends with `<think>\\n`)."""
    return tokenizer.decode(list(prompt_ids)[-4:]).rstrip().endswith(THINK_OPEN)
