"""Named chat templates for tokenizers that ship none (the DeepSeek tokenizer) or need a replacement.

We render with official templates rather than a hand-written registry that drifts: the DeepSeek, Llama and
Qwen templates are read from the copies `trl` ships (taken byte-for-byte from the model repos); ChatML is
short and standard enough to state here.
"""

from __future__ import annotations

import importlib.metadata

from seektune.errors import ConfigError

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_TRL_FILES = {
    "deepseek-v3": "deepseekv3.jinja",
    "deepseek-r1": "deepseek_r1_distill.jinja",
    "llama3": "llama3.jinja",
    "qwen2.5": "qwen2_5.jinja",
    "qwen3": "qwen3.jinja",
}

NAMES = ("chatml", *_TRL_FILES)


def named_template(name: str) -> str:
    """Return the Jinja source of a named template."""
    if name == "chatml":
        return CHATML
    if name not in _TRL_FILES:
        raise ConfigError(f"model.chat_template: unknown template '{name}'; choose one of {', '.join(NAMES)}")
    path = importlib.metadata.distribution("trl").locate_file(f"trl/chat_templates/{_TRL_FILES[name]}")
    return path.read_text(encoding="utf-8")
