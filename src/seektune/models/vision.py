"""Vision-language models (LLaVA, Qwen2-VL): recognising one, its parts (vision tower, projector, language
model), what trains in each, and its processor as the data pipeline uses it (image tokens, pixel values).

A vision-language directory is what transformers' `AutoModelForImageTextToText` and `AutoProcessor` load; the
processor (image processor + tokenizer) is saved beside every artifact so plain transformers can run it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from seektune.data.images import PLACEHOLDER, open_rgb, probe
from seektune.errors import ConfigError, ModelError
from seektune.models.unwrap import unwrap_peft


@dataclass(frozen=True)
class Parts:
    """Module paths inside the transformers model (below any peft wrapper)."""

    tower: str
    projector: str
    placeholder_text: str | None = None   # how one image is written in text; None: the processor's image token
    rope_3d: bool = False                 # positions are (time, height, width) per token (Qwen2-VL's M-RoPE), not 1-D


PARTS = {
    "llava": Parts("model.vision_tower", "model.multi_modal_projector"),
    "qwen2_vl": Parts("model.visual", "model.visual.merger", "<|vision_start|><|image_pad|><|vision_end|>", True),
    "qwen2_5_vl": Parts("model.visual", "model.visual.merger", "<|vision_start|><|image_pad|><|vision_end|>", True),
}
# methods whose peft or seektune implementation is exercised on vision-language models (tests/e2e/test_vision.py)
METHODS = ("full", "freeze", "lora", "qlora", "adalora")


def is_vision_language(config) -> bool:
    return getattr(config, "vision_config", None) is not None


def parts(config) -> Parts:
    model_type = getattr(config, "model_type", "")
    if model_type not in PARTS:
        raise ModelError(f"vision-language model type {model_type!r} is not one seektune knows the parts of "
                         f"(known: {', '.join(PARTS)})")
    return PARTS[model_type]


def text_config(config):
    """The language model's config (a vision-language config nests it)."""
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def language_model(model: nn.Module) -> nn.Module:
    """The decoder stack of the language model (not the vision tower's encoder)."""
    return unwrap_peft(model).get_decoder()


def check_method(config, method: str) -> None:
    if is_vision_language(config) and method not in METHODS:
        raise ConfigError(f"method.name: {method} is not supported on vision-language models yet; use one of "
                          f"{', '.join(METHODS)}")


def peft_parts(model: nn.Module, tower: str, projector: str) -> tuple[str | None, list[str]]:
    """(exclude regex, modules to save) for a peft config: LoRA stays out of a frozen tower (peft's all-linear
    would adapt it), a trained projector is saved whole beside the adapter."""
    found = parts(unwrap_peft(model).config)
    exclude = rf".*{re.escape(found.tower.split('.')[-1])}\..*" if tower == "frozen" else None
    if exclude is not None and found.projector.startswith(found.tower + "."):   # Qwen2-VL: merger inside visual
        exclude = rf".*{re.escape(found.tower.split('.')[-1])}\.(?!{re.escape(found.projector.split('.')[-1])}\.).*"
    return exclude, [found.projector.split(".")[-1]] if projector == "train" else []


def unquantized_parts(quantization, config):
    """A quantization config for a vision-language base that leaves the tower, the projector and the head in
    full precision (QLoRA trains the projector whole; bitsandbytes would store it in 4 bits)."""
    if quantization is None or not is_vision_language(config) or getattr(quantization, "llm_int8_skip_modules", 0):
        return quantization
    found = parts(config)
    quantization.llm_int8_skip_modules = [found.tower, found.projector, "lm_head"]   # prefixes of module names
    return quantization


def set_trainable_parts(model: nn.Module, tower: str, projector: str, language: str = "train") -> None:
    """Whole-model methods (full, freeze): the tower and the projector train or stay frozen as configured, and
    with `language` frozen the language model and its head too (objectives clip, caption)."""
    inner = unwrap_peft(model)
    found = parts(inner.config)
    if language == "frozen":
        language_model(inner).requires_grad_(False)
        inner.get_output_embeddings().requires_grad_(False)
    inner.get_submodule(found.tower).requires_grad_(tower == "train")
    inner.get_submodule(found.projector).requires_grad_(projector == "train")


def uses_rope_3d(model: nn.Module) -> bool:
    """Whether the model places tokens with 3-D positions (Qwen2-VL's M-RoPE): its batches need `rope_positions`."""
    config = unwrap_peft(model).config
    return is_vision_language(config) and parts(config).rope_3d


def rope_positions(model: nn.Module, input_ids: torch.Tensor, position_ids: torch.Tensor,
                   image_grid_thw: torch.Tensor | None = None) -> torch.Tensor:
    """A 3-D-rope model's positions for a batch of rows, (4, batch, seq): the 1-D text positions (restarting at 0
    per sample) and then each sample's (time, height, width) index from the model's own get_rope_index, the
    positions its processor's inputs get at inference (image tokens on their grid; the text after an image goes
    on from the grid's side, not its token count). 2-D position ids would give image tokens 1-D positions, and
    transformers builds a packed row's block-diagonal mask only from the first row of this 4-row form. The
    batch's runs of image tokens are its images in order (image i's grid is `image_grid_thw[i]`)."""
    inner = unwrap_peft(model).model
    config = inner.config
    merge = config.vision_config.spatial_merge_size
    grids = iter(image_grid_thw if image_grid_thw is not None else [])
    rope = position_ids[None].repeat(3, 1, 1)
    for b in range(input_ids.shape[0]):
        starts = (position_ids[b] == 0).nonzero().flatten().tolist() + [input_ids.shape[1]]
        for start, end in zip(starts, starts[1:]):
            types = (input_ids[b, start:end] == config.image_token_id).int()
            left, shown = int(types.sum()), []
            while left > 0:
                shown.append(next(grids))
                left -= int(shown[-1].prod()) // merge ** 2
            if shown:
                rope[:, b, start:end] = inner.get_rope_index(input_ids[b:b + 1, start:end], types[None],
                                                             image_grid_thw=torch.stack(shown))[0][:, 0]
    return torch.cat([position_ids[None], rope])


def token_types(model: nn.Module, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """What generate() needs beside a 3-D-rope model's pixels: the token types (1 at image tokens), from which it
    computes the positions training used; without them it silently falls back to 1-D positions."""
    if not uses_rope_3d(model):
        return {}
    return {"mm_token_type_ids": (input_ids == unwrap_peft(model).config.image_token_id).int()}


class ProcessorImages:
    """A processor as the data pipeline needs it: the text one image is written as, its token id, how many
    positions an image fills, and the pixel tensors of a batch's images (ImageTokens in seektune.data.images)."""

    def __init__(self, processor, config):
        self.processor = processor
        self.parts = parts(config)
        tokenizer = processor.tokenizer
        image_token = getattr(processor, "image_token", None) or PLACEHOLDER
        self.token = self.parts.placeholder_text or image_token
        self.token_id = tokenizer.convert_tokens_to_ids(image_token)
        if self.token_id is None or self.token_id == tokenizer.unk_token_id:
            raise ModelError(f"the processor's image token {image_token!r} is not in its tokenizer's vocabulary")
        self._counts: dict[tuple[int, int], int] = {}

    def count(self, ref: str) -> int:
        """Positions one image fills: the processor's own expansion, measured once per image size."""
        info = probe(ref)
        key = (info.width, info.height)
        if key not in self._counts:
            encoded = self.processor(text=[self.token], images=[open_rgb(ref)], return_tensors="pt")
            self._counts[key] = int((encoded["input_ids"] == self.token_id).sum())
        return self._counts[key]

    def pixel_values(self, refs: list[str]) -> dict[str, torch.Tensor]:
        """The image processor's tensors for `refs` in order (pixel_values, and image_grid_thw for Qwen2-VL)."""
        encoded = self.processor.image_processor(images=[open_rgb(r) for r in refs], return_tensors="pt")
        return {k: v for k, v in encoded.items() if isinstance(v, torch.Tensor)}


def load_images(source: str, config, tokenizer=None) -> ProcessorImages | None:
    """The processor of a vision-language model directory (None for a text model), with `tokenizer` (the run's,
    chat template and pad token set) in place of the one saved beside it."""
    if not is_vision_language(config):
        return None
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(source)
    except (OSError, ValueError) as exc:
        if "torchvision" in str(exc):   # transformers 5 builds Qwen2-VL's video processor with torchvision
            raise ModelError(f"{source}: its processor needs torchvision (pip install torchvision, the build that "
                             f"matches your torch {torch.__version__})") from None
        raise ModelError(f"{source} is a vision-language model but its processor does not load ({exc}); save the "
                         "processor (AutoProcessor.save_pretrained) in the model directory") from None
    if not hasattr(processor, "image_processor"):
        raise ModelError(f"{source} is a vision-language model but has no image processor "
                         "(preprocessor_config.json / processor_config.json)")
    if tokenizer is not None:
        processor.tokenizer = tokenizer
    return ProcessorImages(processor, config)
