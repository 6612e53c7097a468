"""Image-caption pairs for contrastive alignment (objective clip): each image with the text that describes it,
the caption tokenised alone (no chat template, no image tokens), so the text side never sees the image."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seektune.data.formats import Record
from seektune.errors import DataError


@dataclass
class CaptionRow:
    image: str
    caption_ids: list[int]
    supervised: int = 1   # the contrastive loss is a mean over pairs: one unit each

    @property
    def images(self) -> list[str]:
        return [self.image]


def caption_row(record: Record, tokenizer, max_length: int) -> CaptionRow:
    """The record's one image and its caption (the last assistant turn: an image-caption pair's text)."""
    if isinstance(record.content, str) or len(record.images) != 1:
        raise DataError(f"{record.where}: objective clip trains on image-caption pairs ({{\"image\": ..., "
                        f"\"text\": ...}}); this record has {len(record.images)} images, one is needed")
    answers = [m["content"] for m in record.content if m["role"] == "assistant"]
    caption = answers[-1].strip() if answers else ""
    ids = tokenizer(caption, add_special_tokens=False)["input_ids"][:max_length]
    if not ids:
        raise DataError(f"{record.where}: the caption is empty")
    return CaptionRow(record.images[0], ids)


def collate_captions(rows: list[CaptionRow], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded captions, their mask, and a group id per row: rows with the same caption are all positives
    of each other (digits share ten captions; in-batch duplicates would otherwise be counted as negatives)."""
    longest = max(len(r.caption_ids) for r in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    groups: dict[tuple[int, ...], int] = {}
    for i, r in enumerate(rows):
        ids[i, :len(r.caption_ids)] = torch.tensor(r.caption_ids)
        mask[i, :len(r.caption_ids)] = 1
        groups.setdefault(tuple(r.caption_ids), len(groups))
    group = torch.tensor([groups[tuple(r.caption_ids)] for r in rows])
    return {"caption_ids": ids, "caption_mask": mask, "caption_group": group}
