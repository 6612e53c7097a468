"""Images in chat requests: OpenAI `image_url` content parts, checked and turned into the pixel tensors the
engine prefills with. Only inline data URLs are read: a server that opened paths or fetched addresses named by
clients would let any key holder probe its file system or network."""

from __future__ import annotations

import hashlib

from seektune.data import images as image_refs
from seektune.serve.bridge import PromptImages
from seektune.serve.catalog import ServedModel
from seektune.serve.errors import ApiError

MAX_PIXELS = 4096 * 4096   # per image; larger pictures are refused before any pixel is decoded


def _bad(message: str) -> ApiError:
    return ApiError(400, f"messages: {message}", param="messages", code="invalid_image")


def prompt_images(served: ServedModel, urls: list[str]) -> PromptImages | None:
    """The pixels of a request's images (None without images); a 400 naming the image that cannot be used."""
    if not urls:
        return None
    if served.images is None:
        raise _bad(f"{served.name} reads text only; image_url parts need a vision-language model")
    if served.images.parts.rope_3d:
        raise _bad(f"{served.name} places image tokens with 3-D rotary positions (Qwen2-VL), which this server's "
                   "batched engine does not compute yet; ask it with `seektune chat RUN --image FILE`")
    for k, url in enumerate(urls, 1):
        if not url.startswith("data:image/"):
            raise _bad(f"image {k}: send the image inline as a data URL (data:image/png;base64,...); this server "
                       "opens no files and fetches no addresses")
        try:
            info = image_refs.probe(url)
        except ValueError as exc:
            raise _bad(f"image {k}: {exc}") from None
        if info.width * info.height > MAX_PIXELS:
            raise _bad(f"image {k} is {info.width}x{info.height}; at most {MAX_PIXELS} pixels")
    digest = hashlib.sha256("\n".join(urls).encode()).hexdigest()
    return PromptImages(served.images.pixel_values(urls), digest)
