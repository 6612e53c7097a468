"""What one server process serves: the loaded model and, by name, each servable model on it: a whole model,
a merged adapter, or the base plus several adapters side by side (each request's row runs its own adapter).

One adapter is merged into its base by default (the eval report measured unmerged LoRA decoding at 10.3 vs 16.5
tokens/s merged); several adapters stay unmerged so one batch can mix them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from seektune.artifacts import load_many, open_artifact
from seektune.config import ModelConfig
from seektune.models.loading import model_config
from seektune.models.vision import load_images, text_config
from seektune.data.reasoning import THINK_CLOSE
from seektune.data.render import end_of_turn_ids
from seektune.errors import DataError, ModelError
from seektune.models.loading import load_model, load_tokenizer
from seektune.serve.engine.batched import BASE_ADAPTER

log = logging.getLogger("seektune.serve")


@dataclass(frozen=True)
class ServedModel:
    name: str
    adapter: str | None      # the peft adapter its rows run (BASE_ADAPTER: the base alone); None: the model as is
    tokenizer: object
    stop_ids: frozenset[int]
    has_chat_template: bool
    reasoning: bool          # the vocabulary has </think>: R1-style answers are split into reasoning and content
    description: str
    images: object = None    # a vision-language model's processor (models.vision.ProcessorImages); None: text only


@dataclass
class Catalog:
    model: object
    models: dict[str, ServedModel]
    context_length: int
    mixed_adapters: bool     # rows pass peft's `adapter_names`


def _served(name: str, adapter: str | None, tokenizer, description: str, images=None) -> ServedModel:
    try:
        stops, templated = frozenset(end_of_turn_ids(tokenizer)), True
    except DataError:   # no chat template: completions only, ending at EOS
        stops, templated = frozenset({tokenizer.eos_token_id} - {None}), False
    reasoning = THINK_CLOSE in tokenizer.get_vocab()
    return ServedModel(name, adapter, tokenizer, stops, templated, reasoning, description, images)


def display_name(ref: str) -> str:
    """A run directory's name, a model directory's name, a GGUF file's stem, or a packaged name / hub id as
    given."""
    path = Path(ref)
    if path.is_file() and path.suffix == ".gguf":
        return path.stem
    if path.is_dir():
        return path.parent.name if path.name == "final" else path.name
    return ref


def load_catalog(refs: list[str], base: str | None = None, merge: bool = True,
                 dtype: torch.dtype = torch.float32) -> Catalog:
    artifacts = [open_artifact(r) for r in refs]
    names = [display_name(r) for r in refs]
    if len(set(names)) != len(names):
        raise ModelError(f"served model names must differ (they come from the directory names): {names}")
    adapters = [a for a in artifacts if a.kind.attach is not None]
    if len(artifacts) > 1 and len(adapters) != len(artifacts):
        raise ModelError("several models: serve adapters of one base (a whole model is served on its own)")
    if not adapters:
        model = artifacts[0].load_model(dtype)
        catalog = {names[0]: _served(names[0], None, artifacts[0].load_tokenizer(), artifacts[0].describe(),
                                     artifacts[0].load_images())}
        return _finish(model, catalog, mixed=False)

    base_ref = base or adapters[0].base_model
    base_name = display_name(base_ref)
    if base_name in names:
        raise ModelError(f"an adapter is named like its base ({base_name}); rename its run directory")
    if len(adapters) == 1:
        artifact, name = adapters[0], names[0]
        model = artifact.attach_to(load_model(ModelConfig(name_or_path=base_ref), dtype), name) if base \
            else artifact.load_model(dtype, adapter_name=name)
        served = _served(name, None, artifact.load_tokenizer(), artifact.describe(), artifact.load_images())
        if artifact.mergeable and merge:
            log.info("serving %s merged into its base (--no-merge keeps the adapter separate)", name)
            return _finish(model.merge_and_unload(), {name: served}, mixed=False)
        if not _is_lora(model, name):   # bottleneck, IA3, AdaLoRA: the adapter serves alone, unmixed
            return _finish(model, {name: served}, mixed=False)
        model, loaded = model, [name]
    else:
        model, loaded = load_many(refs, dtype, base=base)
        odd = [n for n in loaded if not _is_lora(model, n)]
        if odd:
            raise ModelError(f"{', '.join(odd)}: only LoRA adapters can share a batch with other adapters; serve "
                             "the others one per process")
    base_tokenizer = load_tokenizer(ModelConfig(name_or_path=base_ref))
    base_images = load_images(base_ref, model_config(ModelConfig(name_or_path=base_ref)), base_tokenizer)
    catalog = {base_name: _served(base_name, BASE_ADAPTER, base_tokenizer, f"base model {base_ref}", base_images)}
    for artifact, name in zip(adapters, loaded):
        catalog[name] = _served(name, name, artifact.load_tokenizer(), artifact.describe(), artifact.load_images())
    return _finish(model, catalog, mixed=True)


def _is_lora(model, name: str) -> bool:
    config = getattr(model, "peft_config", {}).get(name)
    return config is not None and config.peft_type.value == "LORA"


def _finish(model, models: dict[str, ServedModel], mixed: bool) -> Catalog:
    if any(c.is_prompt_learning for c in (getattr(model, "peft_config", None) or {}).values()):
        raise ModelError("prompt, prefix and p-tuning adapters are not served (their virtual tokens do not fit the "
                         "batched KV cache); `seektune chat` runs them")
    model.eval()
    context = int(getattr(text_config(model.config), "max_position_embeddings", 0) or 2048)
    return Catalog(model, models, context, mixed)
