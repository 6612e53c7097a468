"""Images in records: where they are (a path beside the data file, or a data URL), checked when the record is
read so a missing or unreadable image is a `file:line` error, and opened as RGB when a batch is built.

In a conversation an image is the placeholder `<image>` in a user turn's text (ShareGPT / LLaMA-Factory's
shape); OpenAI `image_url` content parts become placeholders too, so one renderer handles both. The placeholder
becomes the model's own image tokens when the conversation is rendered (`ImageTokens`, built from the model's
processor in seektune.models.vision).
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

PLACEHOLDER = "<image>"
_DATA_URL = "data:image/"


class ImageTokens(Protocol):
    """What rendering needs from a vision-language model: the token one placeholder is written as, and how many
    positions each image fills (fixed for LLaVA, size-dependent for Qwen2-VL)."""

    token: str
    token_id: int

    def count(self, ref: str) -> int: ...


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


def resolve(ref: object, base_dir: Path, what: str) -> str:
    """A record's image reference as an absolute path or a data URL; raises ValueError with the reason."""
    if isinstance(ref, dict):   # {"url": ...} (OpenAI image_url) or {"path": ...}
        ref = ref.get("url", ref.get("path"))
    if not isinstance(ref, str) or not ref.strip():
        raise ValueError(f"{what} must be a file path or a data URL, got {type(ref).__name__}")
    if ref.startswith(_DATA_URL):
        return ref
    if ref.startswith(("http://", "https://")):
        raise ValueError(f"{what}: {ref[:60]} is a web address; images are read from files or data URLs (download "
                         "them next to the data file first)")
    path = Path(ref.removeprefix("file://")).expanduser()
    return str(path if path.is_absolute() else (base_dir / path).resolve())


def _bytes(ref: str) -> bytes | Path:
    if ref.startswith(_DATA_URL):
        header, _, payload = ref.partition(",")
        if ";base64" not in header:
            raise ValueError("a data URL image must be base64 encoded (data:image/png;base64,...)")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the data URL's base64 payload does not decode") from None
    path = Path(ref)
    if not path.is_file():
        raise ValueError(f"image not found: {path}")
    return path


def probe(ref: str) -> ImageInfo:
    """Format and size from the image's header (no pixels decoded); raises ValueError when it is missing or not
    an image PIL can read."""
    from PIL import Image, UnidentifiedImageError

    source = _bytes(ref)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return ImageInfo(image.format or "unknown", image.width, image.height)
    except (UnidentifiedImageError, OSError) as exc:
        name = "data URL" if isinstance(source, bytes) else str(source)
        raise ValueError(f"unreadable image {name}: {exc}") from None


def open_rgb(ref: str):
    """The image's pixels as an RGB PIL image (what image processors expect)."""
    from PIL import Image

    source = _bytes(ref)
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        return image.convert("RGB")


def describe(ref: str) -> str:
    """A short name for messages: the file name, or `data URL`."""
    return "data URL" if ref.startswith(_DATA_URL) else Path(ref).name
