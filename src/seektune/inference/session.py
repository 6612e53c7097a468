"""A chat session over any artifact: the history, the chat template, the active adapter, and streaming.
`seektune chat` drives one from the terminal; the server and the web UI hold one per conversation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from seektune.artifacts import load_many, open_artifact
from seektune.data import images as image_refs
from seektune.data.images import PLACEHOLDER
from seektune.errors import ConfigError, DataError
from seektune.models.generation import generate


@dataclass
class ChatSession:
    model: object
    tokenizer: object
    adapters: list[str] = field(default_factory=list)   # names of adapters loaded side by side ([] = one model)
    system: str | None = None
    max_new_tokens: int = 256
    temperature: float = 0.0
    history: list[dict] = field(default_factory=list)
    active: str | None = None                           # the adapter in use when several are loaded
    max_thinking_tokens: int | None = None              # reasoning models: budget before </think> is forced
    last_reasoning: str | None = None                   # the reasoning behind the last answer (never in history)
    images: object = None                               # a vision-language model's processor (ProcessorImages)
    image_files: list[str] = field(default_factory=list)   # the history's images, in placeholder order

    @classmethod
    def open(cls, refs: list[str], use: str | None = None, **settings) -> "ChatSession":
        """One artifact, or several adapters of one base side by side (the first, or `use`, active)."""
        first = open_artifact(refs[0])
        if len(refs) == 1:
            model, tokenizer = first.load()
            return cls(model, tokenizer, images=first.load_images(), **settings).reset()
        model, names = load_many(refs)
        session = cls(model, first.load_tokenizer(), names, images=first.load_images(), **settings).reset()
        session.use_adapter(use or names[0])
        return session

    def reset(self) -> "ChatSession":
        self.history = [{"role": "system", "content": self.system}] if self.system else []
        self.image_files = []
        return self

    def use_adapter(self, name: str) -> None:
        """Switch adapters; the history starts again (answers of another adapter are not this one's)."""
        if name not in self.adapters:
            raise ConfigError(f"no adapter named '{name}'; loaded: {', '.join(self.adapters) or 'one model only'}")
        self.model.set_adapter(name)
        self.active = name
        self.reset()

    def ask(self, text: str, stream: bool = False, images: list[str] = ()) -> str:
        """Answer `text` given the history so far (printing tokens as they come with `stream`). A reasoning
        model's reasoning is kept in `last_reasoning`; the history holds the answer alone, as DeepSeek's API asks,
        so earlier thinking never reaches later prompts. `images` (files) go before the text, as in training
        data whose records have no placeholder."""
        streamer = None
        if stream:
            from transformers import TextStreamer

            streamer = TextStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        if images and self.images is None:
            raise ConfigError("this model reads text only; images need a vision-language model")
        try:
            files = [image_refs.resolve(f, Path.cwd(), "image") for f in images]
            for f in files:
                image_refs.probe(f)
        except ValueError as exc:
            raise DataError(str(exc)) from None
        self.history.append({"role": "user", "content": PLACEHOLDER * len(files) + ("\n" if files else "") + text})
        self.image_files += files
        generated = generate(self.model, self.tokenizer, self.history, self.max_new_tokens, self.temperature,
                             streamer=streamer, max_thinking_tokens=self.max_thinking_tokens, images=self.images,
                             image_files=self.image_files)
        self.last_reasoning = generated.reasoning
        self.history.append({"role": "assistant", "content": generated.answer})
        return generated.answer

    def command(self, line: str) -> str:
        """`/reset` or `/adapter NAME`; returns what to tell the user."""
        name, _, arg = line.partition(" ")
        if name == "/reset":
            self.reset()
            return "history cleared"
        if name == "/adapter":
            self.use_adapter(arg.strip())
            return f"adapter: {arg.strip()}"
        return f"unknown command {name}; /reset or /adapter NAME"
