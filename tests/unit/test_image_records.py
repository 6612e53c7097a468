"""Records with images: every shape peers write them in reads into one form, bad images are file:line errors,
and rendering expands each image into its tokens with the training prefix equal to the inference prompt."""

import base64
import copy
import json
import re

import pytest
from PIL import Image

from seektune.data.formats import ReadReport, read_file
from seektune.data.images import PLACEHOLDER
from seektune.data.batching import pack
from seektune.data.pipeline.dedup import Deduplicator
from seektune.data.pipeline.fields import image_group, joined
from seektune.data.pipeline.inspect import Inspection
from seektune.data.render import IGNORE, Renderer
from seektune.errors import DataError


def _png(path, color=(200, 0, 0), size=(8, 6)):
    Image.new("RGB", size, color).save(path)
    return path


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


class FakeImages:
    """ImageTokens with a fixed count per image (the real one asks the model's processor)."""

    token = PLACEHOLDER

    def __init__(self, tokenizer, n: int = 3):
        self.token_id = tokenizer.convert_tokens_to_ids(PLACEHOLDER)
        self.n = n

    def count(self, ref: str) -> int:
        return self.n


@pytest.fixture(scope="module")
def image_tokenizer(tiny_tokenizer):
    tok = copy.deepcopy(tiny_tokenizer)
    tok.add_special_tokens({"additional_special_tokens": [PLACEHOLDER]})
    return tok


def test_sharegpt_openai_alpaca_and_caption_records_read_into_one_form(tmp_path):
    red = _png(tmp_path / "red.png")
    data_url = "data:image/png;base64," + base64.b64encode(red.read_bytes()).decode()
    path = _write(tmp_path / "d.jsonl", [
        {"conversations": [{"from": "human", "value": "<image>\nWhat colour?"}, {"from": "gpt", "value": "Red."}],
         "images": ["red.png"]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url}},
                                                   {"type": "text", "text": "What colour?"}]},
                      {"role": "assistant", "content": "Red."}]},
        {"instruction": "What colour?", "output": "Red.", "images": [str(red)]},   # no placeholder: put first
        {"image": "red.png", "text": "a red square"},
    ])
    records = read_file(path)
    assert records[0].images == [str(red)] and records[0].content[0]["content"] == "<image>\nWhat colour?"
    assert records[1].images == [data_url] and records[1].content[0]["content"] == "<image>\nWhat colour?"
    assert records[2].content[0]["content"] == "<image>\nWhat colour?" and records[2].images == [str(red)]
    assert records[3].content == [{"role": "user", "content": "<image>"},
                                  {"role": "assistant", "content": "a red square"}]


@pytest.mark.parametrize("record, reason", [
    ({"conversations": [{"from": "human", "value": "<image><image> Q"}, {"from": "gpt", "value": "A"}],
      "images": ["red.png"]}, "2 <image> placeholder(s) but 1 image(s)"),
    ({"conversations": [{"from": "human", "value": "<image> Q"}, {"from": "gpt", "value": "A"}],
      "images": ["missing.png"]}, "image not found"),
    ({"conversations": [{"from": "human", "value": "<image> Q"}, {"from": "gpt", "value": "A"}],
      "images": ["notes.txt"]}, "unreadable image"),
    ({"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "<image>"}],
      "images": ["red.png"]}, "in an assistant turn"),
    ({"conversations": [{"from": "human", "value": "<image> Q"}, {"from": "gpt", "value": "A"}],
      "images": ["https://example.com/a.png"]}, "is a web address"),
])
def test_bad_images_are_file_line_errors_or_counted_skips(tmp_path, record, reason):
    _png(tmp_path / "red.png")
    (tmp_path / "notes.txt").write_text("not an image")
    good = {"conversations": [{"from": "human", "value": "<image> Q"}, {"from": "gpt", "value": "A"}],
            "images": ["red.png"]}
    path = _write(tmp_path / "d.jsonl", [good, record])
    with pytest.raises(DataError, match=rf"d.jsonl:2: .*{re.escape(reason)}"):
        read_file(path)
    report = ReadReport()
    assert len(read_file(path, on_error="skip", report=report)) == 1 and sum(report.skipped.values()) == 1


def test_rendering_expands_images_and_the_prefix_is_the_inference_prompt(tmp_path, image_tokenizer):
    red, blue = _png(tmp_path / "r.png"), _png(tmp_path / "b.png", (0, 0, 200))
    images = FakeImages(image_tokenizer, 3)
    renderer = Renderer(image_tokenizer, 256, images=images)
    conv = [{"role": "user", "content": "<image>\nWhat colour?"}, {"role": "assistant", "content": "Red."},
            {"role": "user", "content": "<image>\nAnd this?"}, {"role": "assistant", "content": "Blue."}]
    [sample] = renderer.conversation(conv, "x:1", [str(red), str(blue)])
    assert sample.images == [str(red), str(blue)]
    positions = [i for i, t in enumerate(sample.input_ids) if t == images.token_id]
    assert len(positions) == 6 and all(sample.targets[i] == IGNORE for i in positions)
    prompt = renderer.prompt_ids(conv[:3], [str(red), str(blue)])
    assert sample.input_ids[:len(prompt)] == prompt   # training prefix == inference prompt, images included
    assert image_tokenizer.decode([t for t in sample.targets if t != IGNORE]).count("Blue.") == 1
    first = renderer.prompt_ids(conv[:1], [str(red)])
    assert sum(t == images.token_id for t in first) == 3


def test_a_truncation_through_an_image_drops_the_sample_and_packing_keeps_image_order(tmp_path, image_tokenizer):
    red, blue = str(_png(tmp_path / "r.png")), str(_png(tmp_path / "b.png", (0, 0, 200)))
    images = FakeImages(image_tokenizer, 40)
    conv = [{"role": "user", "content": "Look: <image>"}, {"role": "assistant", "content": "Red."}]
    renderer = Renderer(image_tokenizer, 30, images=images)
    assert renderer.conversation(conv, "x:1", [red]) == [] and renderer.stats.dropped_overlength == 1
    renderer = Renderer(image_tokenizer, 512, images=FakeImages(image_tokenizer, 2))
    samples = renderer.conversation(conv, "x:1", [red]) + renderer.conversation(conv, "x:2", [blue])
    [row] = pack(samples, 512)
    assert row.images == [red, blue]


def test_a_text_model_refuses_image_records(tmp_path, tiny_tokenizer):
    red = str(_png(tmp_path / "r.png"))
    conv = [{"role": "user", "content": "<image> Q"}, {"role": "assistant", "content": "A"}]
    with pytest.raises(DataError, match="x:1: the record has 1 image.*reads text only"):
        Renderer(tiny_tokenizer, 64).conversation(conv, "x:1", [red])


def test_inspect_counts_images_and_dedup_keeps_records_of_other_images(tmp_path):
    _png(tmp_path / "a.png", size=(8, 6))
    _png(tmp_path / "b.png", (0, 0, 200), size=(8, 6))
    base = {"conversations": [{"from": "human", "value": "<image>\nWhat colour is this square?"},
                              {"from": "gpt", "value": "It is a colour."}]}
    records = [{**base, "images": ["a.png"]}, {**base, "images": ["b.png"]}, {**base, "images": ["gone.png"]}]
    found = Inspection()
    for i, r in enumerate(records):
        found.add(r, where=f"{tmp_path / 'd.jsonl'}:{i + 1}")
    summary = found.summary()["images"]
    assert summary["count"] == 3 and summary["formats"] == {"PNG": 2} and summary["common_sizes"] == {"8x6": 2}
    assert summary["unreadable"] == 1 and "d.jsonl:3: image not found" in summary["unreadable_examples"][0]
    dedup = Deduplicator()
    verdicts = [dedup.check(joined(r), image_group(r)) for r in [*records[:2], records[0]]]
    assert verdicts == [None, None, "exact duplicate"]
