"""The vision-language example dataset: scikit-learn's handwritten digits (1,797 8x8 grey images, ten classes,
shipped inside the package, so nothing is downloaded) as PNG files with the three kinds of record the alignment
stages train on: image-caption pairs ("a handwritten digit seven") for clip and caption, and image questions
("What digit is in this image?" -> "It is a seven.") for instruction tuning and evaluation. The split is by image
and seeded, so no held-out image (or an upscaled copy of it) is ever trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seektune.errors import DataError

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
QUESTION = "What digit is in this image?"


def caption(label: int) -> str:
    return f"a handwritten digit {NAMES[label]}"


def answer(label: int) -> str:
    return f"It is {'an' if NAMES[label] == 'eight' else 'a'} {NAMES[label]}."


def load() -> tuple[np.ndarray, np.ndarray]:
    """(images [n, 8, 8] with values 0-16, labels [n])."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits come with scikit-learn: pip install 'seektune[vision]' (or scikit-learn)") from None
    digits = load_digits()
    return digits.images, digits.target


def write_png(pixels: np.ndarray, size: int, path: Path) -> None:
    """An 8x8 digit (0-16, ink high) as a size x size grey PNG, white ink on black, upscaled by repeating pixels."""
    from PIL import Image

    if size % pixels.shape[0]:
        raise DataError(f"--size {size} must be a multiple of the digits' 8 pixels")
    scale = size // pixels.shape[0]
    grey = np.kron(pixels, np.ones((scale, scale))) * (255 / 16)
    Image.fromarray(grey.round().clip(0, 255).astype(np.uint8), mode="L").save(path)


def split(count: int, test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    if not 0 < test_fraction < 1:
        raise DataError(f"--test-fraction must be between 0 and 1, got {test_fraction}")
    order = np.random.default_rng(seed).permutation(count).tolist()
    cut = round(count * test_fraction)
    return sorted(order[cut:]), sorted(order[:cut])


def records(index: int, label: int, image: str, held_out: bool) -> dict[str, dict]:
    """The caption pair and the image question of one image (evaluation's {question, reference, image} shape for
    held-out ones, a ShareGPT record with `images` for training)."""
    pair = {"image": image, "text": caption(label)}
    if held_out:
        question = {"question": QUESTION, "reference": answer(label), "image": image, "label": NAMES[label]}
    else:
        question = {"conversations": [{"from": "human", "value": f"<image>\n{QUESTION}"},
                                      {"from": "gpt", "value": answer(label)}], "images": [image]}
    return {"captions": pair, "qa": question}


def build(step, out_dir: Path, test_fraction: float, size: int) -> dict:
    """images/NNNN.png and {captions,qa}.{train,test}.jsonl in `out_dir` (image paths relative to it); the
    images go in a staging folder renamed into place, so an interrupted build leaves no half set."""
    from seektune.atomic import JsonlWriter, publish, staging_dir

    images, labels = load()
    train, test = split(len(images), test_fraction, step.seed or 0)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(out_dir / "images")
    for i, pixels in enumerate(images):
        write_png(pixels, size, staging / f"{i:04d}.png")
    publish(staging, out_dir / "images")
    step.tally.records_in = len(images)
    paths = {f"{kind}.{part}": out_dir / f"{kind}.{part}.jsonl" for kind in ("captions", "qa") for part in ("train", "test")}
    for part, indices in (("train", train), ("test", test)):
        with JsonlWriter(paths[f"captions.{part}"], step.tally) as captions, \
                JsonlWriter(paths[f"qa.{part}"]) as questions:
            for i in indices:
                written = records(i, int(labels[i]), f"images/{i:04d}.png", part == "test")
                captions.write(written["captions"])
                questions.write(written["qa"])
    step.extra.update({"images": {"train": len(train), "test": len(test)}, "size": size})
    step.finish(list(paths.values()))
    return step.extra
