"""The digits example dataset: a seeded split by image with nothing on both sides, PNGs at the asked size whose
pixels are the digit's, and the three record shapes the vision stages read (caption pairs, ShareGPT questions
with images, held-out {question, reference, image})."""

import json

import numpy as np
import pytest
from PIL import Image

from seektune.cli import main
from seektune.data.examples import load_examples
from seektune.data.formats import read_file
from seektune.data.pipeline import digits


def test_answers_and_captions_name_the_digit():
    assert digits.answer(7) == "It is a seven." and digits.answer(8) == "It is an eight."
    assert digits.caption(0) == "a handwritten digit zero"


def test_the_split_is_seeded_and_disjoint():
    train, test = digits.split(100, 0.2, seed=3)
    assert len(test) == 20 and not set(train) & set(test) and sorted(train + test) == list(range(100))
    assert digits.split(100, 0.2, seed=3) == (train, test) != digits.split(100, 0.2, seed=4)


def test_the_data_step_writes_images_and_records(tmp_path):
    assert main(["data", "digits", "--out-dir", str(tmp_path), "--test-fraction", "0.1", "--size", "16"]) == 0
    images, labels = digits.load()
    train = [json.loads(line) for line in (tmp_path / "qa.train.jsonl").read_text().splitlines()]
    test_pairs = [json.loads(line) for line in (tmp_path / "captions.test.jsonl").read_text().splitlines()]
    assert len(train) + len(test_pairs) == len(images) == 1797 and len(test_pairs) == 180
    assert not {r["images"][0] for r in train} & {r["image"] for r in test_pairs}
    first = test_pairs[0]
    index = int(first["image"].split("/")[1][:4])
    assert first["text"] == digits.caption(int(labels[index]))
    picture = np.asarray(Image.open(tmp_path / first["image"]))
    assert picture.shape == (16, 16)
    assert np.array_equal(picture[::2, ::2], np.round(images[index] * 255 / 16).astype(np.uint8))
    records = read_file(tmp_path / "qa.train.jsonl")                   # the training reader takes them
    assert records[0].images and records[0].content[-1]["content"].startswith("It is")
    held_out = load_examples(tmp_path / "qa.test.jsonl")               # so does evaluation, image resolved
    raw = json.loads((tmp_path / "qa.test.jsonl").read_text().splitlines()[0])
    assert held_out[0].images == [str((tmp_path / raw["image"]).resolve())]
    assert held_out[0].reference == raw["reference"] and raw["image"] == first["image"]
    assert (tmp_path / "captions.train.jsonl.manifest.json").is_file()


def test_sizes_must_be_multiples_of_eight(tmp_path):
    from seektune.errors import DataError

    with pytest.raises(DataError, match="multiple of the digits' 8 pixels"):
        digits.write_png(np.zeros((8, 8)), 12, tmp_path / "x.png")
