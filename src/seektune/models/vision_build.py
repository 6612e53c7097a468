"""Assemble a LLaVA-style vision-language model from a text model and a vision encoder: the text model's weights
unchanged, an `<image>` token added to its tokenizer, a two-layer projector (new), and a CLIP or SigLIP vision
tower (a pretrained directory the user has, or a new one of a given size, to be trained from scratch: no
pretrained vision weights ship in a package). The result is `LlavaForConditionalGeneration` + `LlavaProcessor`,
which plain transformers loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from seektune.config import ModelConfig
from seektune.data.images import PLACEHOLDER
from seektune.errors import ModelError
from seektune.models.loading import load_model, load_tokenizer

VISION_TYPES = ("clip", "clip_vision_model", "siglip", "siglip_vision_model")


@dataclass(frozen=True)
class NewTower:
    """A vision tower trained from scratch (CLIP architecture)."""

    image_size: int = 16
    patch_size: int = 4
    hidden_size: int = 64
    layers: int = 2
    heads: int = 4

    def config(self):
        from transformers import CLIPVisionConfig

        if self.image_size % self.patch_size:
            raise ModelError(f"--image-size {self.image_size} is not a multiple of --patch-size {self.patch_size}")
        return CLIPVisionConfig(hidden_size=self.hidden_size, intermediate_size=4 * self.hidden_size,
                                num_hidden_layers=self.layers, num_attention_heads=self.heads,
                                image_size=self.image_size, patch_size=self.patch_size)


def _pretrained_tower(path: str):
    """(vision config, vision model) from a CLIP/SigLIP directory (the whole dual encoder or its vision half)."""
    from transformers import AutoConfig, CLIPVisionModel, SiglipVisionModel

    source = Path(path).expanduser()
    if not (source / "config.json").is_file():
        raise ModelError(f"--vision {path}: not a model directory (no config.json)")
    kind = AutoConfig.from_pretrained(str(source)).model_type
    if kind not in VISION_TYPES:
        raise ModelError(f"--vision {path}: a {kind} model; the vision tower must be CLIP or SigLIP")
    cls = CLIPVisionModel if kind.startswith("clip") else SiglipVisionModel
    tower = cls.from_pretrained(str(source))
    return tower.config, tower


def _image_processor(vision_config, vision_dir: str | None):
    """The vision tower's own image processor when its directory has one, else CLIP's at the tower's size."""
    from transformers import AutoImageProcessor, CLIPImageProcessorPil

    if vision_dir and (Path(vision_dir).expanduser() / "preprocessor_config.json").is_file():
        return AutoImageProcessor.from_pretrained(str(Path(vision_dir).expanduser()), backend="pil")
    size = vision_config.image_size
    return CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def assemble_llava(text_model: str, vision_dir: str | None = None, new_tower: NewTower = NewTower(),
                   seed: int = 0, class_token: str = "drop"):
    """(LlavaForConditionalGeneration, LlavaProcessor): the text model's weights, the tower's (or new ones),
    and a new projector; `<image>` added to the tokenizer. `class_token`: whether a CLIP tower's class token
    reaches the projector beside the patches ("keep": LLaVA's `full` feature selection)."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    torch.manual_seed(seed)
    tokenizer = load_tokenizer(ModelConfig(name_or_path=text_model))
    text = load_model(ModelConfig(name_or_path=text_model))
    if getattr(text.config, "vision_config", None) is not None:
        raise ModelError(f"{text_model} is already a vision-language model")
    if PLACEHOLDER not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [PLACEHOLDER]})
    text.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    tower = None
    vision_config = new_tower.config()
    if vision_dir:
        vision_config, tower = _pretrained_tower(vision_dir)
    clip = vision_config.model_type.startswith("clip")   # CLIP has a class token to drop, SigLIP none
    strategy = "default" if clip and class_token == "drop" else "full"
    config = LlavaConfig(vision_config=vision_config, text_config=text.config,
                         image_token_id=tokenizer.convert_tokens_to_ids(PLACEHOLDER),
                         vision_feature_layer=-1, vision_feature_select_strategy=strategy,
                         tie_word_embeddings=text.config.tie_word_embeddings)
    model = LlavaForConditionalGeneration(config)
    model.model.language_model.load_state_dict(text.get_decoder().state_dict())
    model.lm_head.load_state_dict(text.get_output_embeddings().state_dict())
    if tower is not None:
        model.model.vision_tower.load_state_dict(tower.state_dict())
    if config.tie_word_embeddings:
        model.tie_weights()
    model.generation_config = text.generation_config
    processor = LlavaProcessor(image_processor=_image_processor(vision_config, vision_dir), tokenizer=tokenizer,
                               patch_size=vision_config.patch_size, vision_feature_select_strategy=strategy,
                               image_token=PLACEHOLDER, num_additional_image_tokens=1 if clip else 0,
                               chat_template=tokenizer.chat_template)
    return model, processor

