"""A chat session over any artifact: the history, the chat template, the active adapter, and streaming.
`seektune chat` drives one from the terminal; the server and the web UI hold one per conversation."""

from __future__ import annotations

from dataclasses import dataclass, field

from seektune.artifacts import load_many, open_artifact
from seektune.errors import ConfigError
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

    @classmethod
    def open(cls, refs: list[str], use: str | None = None, **settings) -> "ChatSession":
        """One artifact, or several adapters of one base side by side (the first, or `use`, active)."""
        if len(refs) == 1:
            model, tokenizer = open_artifact(refs[0]).load()
            return cls(model, tokenizer, **settings).reset()
        model, names = load_many(refs)
        session = cls(model, open_artifact(refs[0]).load_tokenizer(), names, **settings).reset()
        session.use_adapter(use or names[0])
        return session

    def reset(self) -> "ChatSession":
        self.history = [{"role": "system", "content": self.system}] if self.system else []
        return self

    def use_adapter(self, name: str) -> None:
        """Switch adapters; the history starts again (answers of another adapter are not this one's)."""
        if name not in self.adapters:
            raise ConfigError(f"no adapter named '{name}'; loaded: {', '.join(self.adapters) or 'one model only'}")
        self.model.set_adapter(name)
        self.active = name
        self.reset()

    def ask(self, text: str, stream: bool = False) -> str:
        """Answer `text` given the history so far (printing tokens as they come with `stream`). A reasoning
        model's reasoning is kept in `last_reasoning`; the history holds the answer alone, as DeepSeek's API asks,
        so earlier thinking never reaches later prompts."""
        streamer = None
        if stream:
            from transformers import TextStreamer

            streamer = TextStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.history.append({"role": "user", "content": text})
        generated = generate(self.model, self.tokenizer, self.history, self.max_new_tokens, self.temperature,
                             streamer=streamer, max_thinking_tokens=self.max_thinking_tokens)
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
