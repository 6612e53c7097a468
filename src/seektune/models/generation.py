"""Chat generation that renders prompts exactly as training did, stops on the template's end-of-turn token,
and splits R1-style answers into reasoning and answer, optionally with a separate token budget for thinking:
when the reasoning uses up its budget, `</think>` is written for the model and the answer gets its own budget
(the "budget forcing" of s1). A vision-language model's images (`images`: its processor, `prompt_images`: each
prompt's image files) are expanded into image tokens as training expanded them, and their pixels go with the
prompt."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seektune.data.reasoning import THINK_CLOSE, THINK_OPEN, parse_generated, prompt_opens_reasoning
from seektune.data.render import Renderer, end_of_turn_ids
from seektune.errors import ConfigError
from seektune.models.vision import token_types


def chat_prompt_ids(tokenizer, messages: list[dict]) -> torch.Tensor:
    """The exact prompt the model saw during training (the training renderer's pieces, no extra specials)."""
    return torch.tensor([Renderer(tokenizer, max_length=1 << 30).prompt_ids(messages)])


@dataclass
class Generated:
    answer: str                  # the final answer (after </think> for reasoning models)
    reasoning: str | None        # the reasoning, when the model wrote any
    closed: bool                 # False: the reasoning block never closed (its budget or max tokens ran out)
    reasoning_tokens: int        # tokens generated inside the reasoning block
    thought: bool = False        # a reasoning block was opened (by the prompt or the model)


def _padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row)
        mask[i, width - len(row):] = 1
    return ids, mask


@torch.no_grad()
def _generate(model, rows: list[list[int]], max_new_tokens: int, stops: list[int], pad: int, temperature: float,
              streamer=None, image_inputs: dict | None = None) -> list[list[int]]:
    """New tokens per row (left-padded batch), each cut after its first stop token."""
    ids, mask = _padded(rows, pad)
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    pixels = {k: v.to(model.device) for k, v in (image_inputs or {}).items()}
    if pixels:   # a 3-D-rope model (Qwen2-VL) computes the positions training used from the token types
        pixels.update({k: v.to(model.device) for k, v in token_types(model, ids).items()})
    out = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                         max_new_tokens=max_new_tokens, eos_token_id=stops, pad_token_id=pad, streamer=streamer,
                         **pixels, **sampling)
    new = []
    for row in out[:, ids.shape[1]:].tolist():
        cut = next((k + 1 for k, t in enumerate(row) if t in stops), len(row))
        new.append(row[:cut])
    return new


def generate_answers(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int = 128,
                     temperature: float = 0.0, max_thinking_tokens: int | None = None,
                     streamer=None, images=None, prompt_images: list[list[str]] | None = None) -> list[Generated]:
    """Answer each conversation. With `max_thinking_tokens` and a model whose prompt opens a reasoning block,
    thinking stops at that budget (`</think>` is appended for it) and the answer then gets `max_new_tokens`."""
    prompt_images = prompt_images or [[] for _ in prompts]
    renderer = Renderer(tokenizer, max_length=1 << 30, images=images)
    rows = [renderer.prompt_ids(messages, refs) for messages, refs in zip(prompts, prompt_images)]
    refs = [ref for group in prompt_images for ref in group]
    image_inputs = images.pixel_values(refs) if refs else None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = end_of_turn_ids(tokenizer)
    opened = [prompt_opens_reasoning(tokenizer, row) for row in rows]
    close = tokenizer.convert_tokens_to_ids(THINK_CLOSE) if THINK_CLOSE in tokenizer.get_vocab() else None
    if max_thinking_tokens is not None and close is not None and any(opened):
        if image_inputs is not None:
            raise ConfigError("--max-thinking-tokens is not supported with images yet (the answer pass would need "
                              "the images again)")
        thinking = _generate(model, rows, max_thinking_tokens, [*stops, close], pad, temperature, streamer)
        forced = tokenizer(f"\n{THINK_CLOSE}\n\n", add_special_tokens=False)["input_ids"]
        thoughts = [t if (t and t[-1] in (close, *stops)) else t + forced for t in thinking]
        going = [i for i, t in enumerate(thoughts) if not (t and t[-1] in stops)]
        answers = dict(zip(going, _generate(model, [rows[i] + thoughts[i] for i in going], max_new_tokens, stops,
                                            pad, temperature, streamer))) if going else {}
        generated = [thoughts[i] + answers.get(i, []) for i in range(len(rows))]
    else:
        generated = _generate(model, rows, max_new_tokens, stops, pad, temperature, streamer, image_inputs)
    out = []
    for row, was_opened in zip(generated, opened):
        text = tokenizer.decode([t for t in row if t not in stops], skip_special_tokens=True)
        reasoning, answer, closed = parse_generated(text, was_opened)
        inside = row.index(close) if close in row else (len(row) if reasoning is not None and not closed else 0)
        thought = was_opened or text.lstrip().startswith(THINK_OPEN)
        out.append(Generated(answer, reasoning, closed, inside, thought))
    return out


def generate(model, tokenizer, messages: list[dict], max_new_tokens: int = 128, temperature: float = 0.0,
             streamer=None, max_thinking_tokens: int | None = None, images=None,
             image_files: list[str] = ()) -> Generated:
    return generate_answers(model, tokenizer, [messages], max_new_tokens, temperature, max_thinking_tokens,
                            streamer, images, [list(image_files)])[0]
