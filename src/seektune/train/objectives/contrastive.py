"""Contrastive alignment (objective clip, the seeds' stage 1 and 2): a vision tower's pooled image features and
text features meet in one space through two linear projections, trained with CLIP's symmetric cross-entropy over
the batch and a learnable temperature. The text side is the language model itself, frozen: the mean of its last
hidden states over the caption (`text_features: hidden`) or of its input embeddings (`embeddings`). With
`pair_with: views` there is no text: two augmented views of each image are the pair (stage 1, the tower alone).

The projections and the temperature are the objective's own weights: checkpointed with the run and written beside
the model as alignment.safetensors, which `load_alignment` reads back to embed images and captions (retrieval).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from seektune.data.captions import CaptionRow, collate_captions
from seektune.errors import ConfigError, ModelError
from seektune.models.unwrap import unwrap_peft
from seektune.models.vision import language_model, parts, text_config
from seektune.train.objectives.base import Objective

MAX_SCALE = math.log(100)   # CLIP clamps the logit scale at 100
ALIGNMENT_WEIGHTS, ALIGNMENT_CONFIG = "alignment.safetensors", "alignment.json"
POOLED_TOWERS = ("llava",)  # towers called as tower(pixel_values=...) with a pooled output (CLIP, SigLIP)


def clip_loss(a: torch.Tensor, b: torch.Tensor, log_scale: torch.Tensor,
              group: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the a->b and b->a cross-entropies over cosine similarities; rows sharing a group are all
    positives (targets spread evenly over them)."""
    logits = log_scale.clamp(max=MAX_SCALE).exp() * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
    if group is None:
        targets = torch.eye(len(a), device=a.device)
    else:
        same = (group[:, None] == group[None, :]).float()
        targets = same / same.sum(1, keepdim=True)   # symmetric, so it serves both directions
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def shifted_views(pixels: torch.Tensor, shift: float, noise: float) -> torch.Tensor:
    """A random translation of up to `shift` of the side (edges repeated) plus Gaussian noise, per image."""
    b, _, h, w = pixels.shape
    pad = max(1, round(shift * max(h, w)))
    padded = F.pad(pixels, (pad, pad, pad, pad), mode="replicate")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, b)).tolist()
    out = torch.stack([padded[i, :, y:y + h, x:x + w] for i, (y, x) in enumerate(zip(dy, dx))])
    return out + noise * torch.randn_like(out)


class ContrastiveObjective(Objective):
    name = "clip"
    unit = "pairs"

    def __init__(self, model: nn.Module, settings):
        super().__init__(model)
        inner = unwrap_peft(model)
        if inner.config.model_type not in POOLED_TOWERS:
            raise ConfigError(f"objective clip pools the vision tower's output, which seektune does for "
                              f"{', '.join(POOLED_TOWERS)} models, not {inner.config.model_type}; align with "
                              "objective caption instead")
        self.tower_path = parts(inner.config).tower
        self.settings = settings
        vision_hidden = inner.config.vision_config.hidden_size
        self.image_projection = nn.Linear(vision_hidden, settings.embedding_dim, bias=False)
        self.text_projection = (nn.Linear(text_config(inner.config).hidden_size, settings.embedding_dim, bias=False)
                                if settings.pair_with == "text" else None)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / settings.init_temperature)))

    def collate(self, rows: list[CaptionRow], pad_id: int, packed: bool) -> dict[str, torch.Tensor]:
        batch = collate_captions(rows, pad_id)
        batch.update(self.images.pixel_values([r.image for r in rows]))
        return batch

    def describe(self) -> str:
        s = self.settings
        side = f"text {s.text_features} of the frozen language model" if s.pair_with == "text" else "image views"
        return f"clip (symmetric contrastive, {side}, embedding {s.embedding_dim}, learnable temperature)"

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = unwrap_peft(self.model).get_submodule(self.tower_path)(pixel_values=pixel_values)
        pooled = getattr(out, "pooler_output", None)
        features = pooled if pooled is not None else out.last_hidden_state.mean(1)
        return self.image_projection(features.to(self.image_projection.weight.dtype))

    @torch.no_grad()
    def text_features_of(self, caption_ids: torch.Tensor, caption_mask: torch.Tensor) -> torch.Tensor:
        if self.settings.text_features == "embeddings":
            states = unwrap_peft(self.model).get_input_embeddings()(caption_ids)
        else:
            states = language_model(self.model)(input_ids=caption_ids, attention_mask=caption_mask,
                                                use_cache=False).last_hidden_state
        mask = caption_mask.unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp(min=1)

    def forward(self, caption_ids, caption_mask, caption_group, pixel_values, **image_inputs):
        if self.settings.pair_with == "views":
            s = self.settings
            a = self.image_features(shifted_views(pixel_values, s.view_shift, s.view_noise))
            b = self.image_features(shifted_views(pixel_values, s.view_shift, s.view_noise))
            loss = clip_loss(a, b, self.logit_scale)
        else:
            a = self.image_features(pixel_values)
            b = self.text_projection(self.text_features_of(caption_ids, caption_mask).float())
            loss = clip_loss(a, b, self.logit_scale, caption_group)
        n = torch.tensor(len(caption_ids), device=loss.device)
        return loss * n, n

    @torch.no_grad()
    def embed_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Unit-length image embeddings in the joint space (retrieval evaluation)."""
        return F.normalize(self.image_features(pixel_values).float(), dim=-1)

    @torch.no_grad()
    def embed_texts(self, caption_ids: torch.Tensor, caption_mask: torch.Tensor) -> torch.Tensor:
        """Unit-length caption embeddings in the joint space (only with pair_with text)."""
        return F.normalize(self.text_projection(self.text_features_of(caption_ids, caption_mask).float()), dim=-1)

    def save_beside(self, directory) -> None:
        """alignment.safetensors (projections, logit scale) and alignment.json (how to rebuild them)."""
        directory = Path(directory)
        save_file({n: p.detach().float().contiguous().cpu() for n, p in self.own_parameters().items()},
                  str(directory / ALIGNMENT_WEIGHTS))
        s = self.settings
        (directory / ALIGNMENT_CONFIG).write_text(json.dumps(
            {"embedding_dim": s.embedding_dim, "text_features": s.text_features, "pair_with": s.pair_with,
             "temperature": float(torch.exp(-self.logit_scale.detach().clamp(max=MAX_SCALE)))}, indent=1))


def load_alignment(model: nn.Module, directory) -> ContrastiveObjective | None:
    """The trained joint space saved beside a model (None where there is none), for retrieval evaluation."""
    directory = Path(directory)
    if not (directory / ALIGNMENT_WEIGHTS).is_file():
        return None
    saved = json.loads((directory / ALIGNMENT_CONFIG).read_text())
    settings = SimpleNamespace(embedding_dim=saved["embedding_dim"], text_features=saved["text_features"],
                               pair_with=saved["pair_with"], init_temperature=saved["temperature"])
    aligned = ContrastiveObjective(model, settings)
    missing = aligned.load_state_dict(load_file(str(directory / ALIGNMENT_WEIGHTS)), strict=False).missing_keys
    if any(not k.startswith("model.") for k in missing):
        raise ModelError(f"{directory / ALIGNMENT_WEIGHTS} lacks {[k for k in missing if not k.startswith('model.')]}"
                         f" that {ALIGNMENT_CONFIG} describes; it was written by another run")
    return aligned.eval()
