"""One trained (or packaged) model as seektune hands it around: a directory of a known kind, its base model and
the method record, and how to load, describe and merge it. Every verb that opens a model comes through
`open_artifact`; every artifact seektune writes goes through `write_artifact` (built aside, renamed into place).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

import torch

from seektune.artifacts.kinds import FULL_MODEL, KINDS, ArtifactKind
from seektune.atomic import publish, staging_dir, write_json
from seektune.data.render import end_of_turn_ids
from seektune.errors import ConfigError, DataError, ModelError
from seektune.config import ModelConfig
from seektune.models.loading import load_model, load_tokenizer, model_config, resolve
from seektune.models.vision import ProcessorImages, load_images

METHOD_FILE = "seektune_method.json"  # beside every artifact seektune writes: how it was trained, how to load it


@dataclass(frozen=True)
class Artifact:
    path: Path            # the artifact directory (a run's final/), or the name of a model not on disk
    kind: ArtifactKind
    source: str           # what transformers loads for a self-contained model (directory or hub id)

    @cached_property
    def info(self) -> dict:
        """The method record (seektune_method.json), read once; {} for artifacts seektune did not write."""
        path = self.path / METHOD_FILE
        return json.loads(path.read_text()) if path.is_file() else {}

    @property
    def name(self) -> str:
        """The run directory's name for a run's final/, else the directory's own name."""
        return self.path.parent.name if self.path.name == "final" else self.path.name

    @property
    def base_model(self) -> str | None:
        return self.kind.base(self.path)

    @property
    def method(self) -> str:
        if "method" in self.info:
            return self.info["method"]
        if self.kind.name == "peft-adapter":
            return json.loads((self.path / "adapter_config.json").read_text()).get("peft_type", "?").lower()
        return self.kind.name

    @property
    def mergeable(self) -> bool:
        return bool(self.info.get("mergeable", self.kind.mergeable))

    def describe(self) -> str:
        return self.kind.describe(self.path) if self.path.exists() else self.source

    @property
    def head(self) -> str:
        """causal_lm, or reward for a reward model (a scalar head instead of the LM head)."""
        return self.info.get("head", "causal_lm")

    def load_model(self, dtype: torch.dtype = torch.float32, adapter_name: str = "default"):
        """The model (a base with this adapter attached, for adapter kinds); a missing model is a ModelError
        that says what can be loaded offline."""
        if self.kind.load_model is not None:
            return self.kind.load_model(self.path, dtype)
        if self.kind.attach is None:
            return load_model(ModelConfig(name_or_path=self.source), dtype, head=self.head)
        pad = self.load_tokenizer().pad_token_id if self.head == "reward" else None
        base = load_model(ModelConfig(name_or_path=self.base_model), dtype, head=self.head, pad_token_id=pad)
        return self.kind.attach(base, self.path, adapter_name, self.info)

    def attach_to(self, model, adapter_name: str):
        """Put this adapter on an already loaded base (several adapters side by side)."""
        if self.kind.attach is None:
            raise ModelError(f"{self.path} is a whole model, not an adapter")
        return self.kind.attach(model, self.path, adapter_name, self.info)

    def load_tokenizer(self):
        """The artifact's own tokenizer (adapters are saved with theirs), pad token set."""
        if self.kind.load_tokenizer is not None:
            return self.kind.load_tokenizer(self.path)
        if self.kind.attach is None:
            return load_tokenizer(ModelConfig(name_or_path=self.source))
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    def load_images(self) -> ProcessorImages | None:
        """A vision-language artifact's processor (saved beside it); None for a text model."""
        if self.kind.load_model is not None:   # one GGUF file: text only
            return None
        source = self.base_model if self.kind.attach is not None else self.source
        config = model_config(ModelConfig(name_or_path=source))
        return load_images(str(self.path) if self.path.is_dir() else self.source, config, self.load_tokenizer())

    def load(self, dtype: torch.dtype = torch.float32):
        """(model in eval mode, tokenizer), to generate with."""
        if self.head == "reward":
            raise ModelError(f"{self.path} is a reward model: it scores answers and does not generate; use it "
                             f"with `seektune generate --best-of N --reward {self.path}` or a GRPO "
                             f"`model:{self.path}` reward")
        model = self.load_model(dtype)
        model.eval()
        return model, self.load_tokenizer()

    def merge(self, out: str | Path) -> Path:
        """Fold an adapter into its base and save a plain transformers model directory."""
        if self.kind.attach is None or not self.mergeable:
            raise ConfigError(f"{self.path}: {self.method} cannot be merged into the base weights "
                              "(only LoRA-family and IA3 adapters are linear in the weights); serve it with its "
                              "adapter")
        merged = self.load_model().merge_and_unload()
        images = self.load_images()
        return write_artifact(Path(out), lambda tmp: merged.save_pretrained(str(tmp)), self.load_tokenizer(),
                              processor=images.processor if images is not None else None)


def open_artifact(ref: str | Path) -> Artifact:
    """A run directory (its final/), an adapter or model directory, a GGUF file, a packaged name, or a cached hub
    id."""
    path = Path(ref)
    if (path / "final").is_dir():
        path = path / "final"
    if path.is_file() and path.suffix == ".gguf":
        return Artifact(path, next(k for k in KINDS if k.detect(path)), str(path))
    if not path.is_dir():
        source = resolve(str(ref))  # packaged name -> its cached directory; otherwise a hub id
        if not Path(source).is_dir():
            return Artifact(Path(str(ref)), FULL_MODEL, source)
        path = Path(source)
    for kind in KINDS:
        if kind.detect(path):
            return Artifact(path, kind, str(path))
    raise ModelError(f"{path} is not a model or adapter directory (no config.json, adapter_config.json or "
                     "bottleneck_config.json)")


def load_for_inference(ref: str | Path, dtype: torch.dtype = torch.float32):
    """(model, tokenizer) of any artifact reference, ready to generate."""
    return open_artifact(ref).load(dtype)


def write_artifact(out: Path, write: Callable[[Path], None], tokenizer, info: dict | None = None,
                   processor=None) -> Path:
    """Build `out` in a temporary sibling (`write(tmp)`, the method record, the tokenizer, a vision-language
    model's processor), then rename it into place: a crash leaves the previous artifact, never half of one."""
    tmp = staging_dir(out)
    write(tmp)
    if (tmp / "config.json").is_file():
        _stop_at_end_of_turn(tmp, tokenizer)
    if info is not None:
        write_json(tmp / METHOD_FILE, info)
    tokenizer.save_pretrained(str(tmp))
    if processor is not None:   # processor_config.json (image processor); its tokenizer is `tokenizer`
        processor.save_pretrained(str(tmp))
    publish(tmp, out)
    return out


def _stop_at_end_of_turn(model_dir: Path, tokenizer) -> None:
    """Make `generation_config.eos_token_id` hold the template's end-of-turn token, so transformers pipelines,
    vLLM, TGI and llama.cpp stop where seektune's own generation stops (base configs often name only the
    pre-training EOS)."""
    from transformers import GenerationConfig

    try:
        stops = end_of_turn_ids(tokenizer)
    except DataError:  # no chat template: nothing but EOS ends a turn
        return
    path = model_dir / "generation_config.json"
    config = GenerationConfig.from_pretrained(str(model_dir)) if path.is_file() else \
        GenerationConfig.from_model_config(json.loads((model_dir / "config.json").read_text()))
    eos = config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if set(stops) <= eos:
        return
    config.eos_token_id = sorted(eos | set(stops))
    config.save_pretrained(str(model_dir))


def find(root: str | Path) -> list[Artifact]:
    """Every adapter under `root`: run directories' final/ and bare adapter directories (not checkpoints)."""
    root = Path(root)
    found = []
    for path in sorted([root, *(p for p in root.rglob("*") if p.is_dir())]):
        if "checkpoints" in path.parts or path.name.startswith("."):
            continue
        kind = next((k for k in KINDS if k.detect(path)), None)
        if kind is not None and kind.attach is not None:
            found.append(Artifact(path, kind, str(path)))
    return found
