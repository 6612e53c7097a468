"""The vision-language alignment stages on the tiny LLaVA of test_vision.py: objective clip aligns the tower with
the frozen language model's caption features (held-out squares retrieve their caption), objective caption trains
the projector with the language model bit-equal, and a clip run resumes to the same projections."""

import json

import pytest
import torch
from safetensors.torch import load_file

from seektune.config import load as load_config
from seektune.data.examples import load_examples
from seektune.evaluate.retrieval import recall_at_k, retrieval
from seektune.errors import ConfigError
from seektune.models.loading import load_model, load_tokenizer
from seektune.models.vision import load_images
from seektune.train.loop import train
from seektune.train.objectives.contrastive import clip_loss, load_alignment
from tests.conftest import write_config
from tests.e2e.test_vision import _colour_data, vision_setup  # noqa: F401  (the shared module fixture)

CAPTIONS = {"red": "a red square", "blue": "a blue square"}


@pytest.fixture(scope="module")
def caption_file(vision_setup):  # noqa: F811
    root = vision_setup[0]
    pairs = _colour_data(root / "caption-images", 16)
    path = root / "captions.jsonl"
    path.write_text("".join(json.dumps({"image": p, "text": CAPTIONS[c]}) + "\n" for p, c in pairs))
    return path


def _run(tmp_path, setup, data, objective, method=None, **train_settings):
    cfg = write_config(tmp_path, setup[1], data, objective=objective,
                       method=method or {"name": "full", "vision": {"tower": "train"}},
                       data={"train": [str(data)], "max_length": 64},
                       train={"max_steps": 20, "micro_batch_size": 8, "learning_rate": 3e-3, "precision": "fp32",
                              "warmup_ratio": 0.0, "seed": 5, **train_settings})
    return load_config(cfg)


def _losses(run) -> list[float]:
    return [m["loss"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in m]


def _language_model_state(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items() if "vision_tower" not in k and "projector" not in k}


def test_clip_aligns_held_out_images_with_their_captions(tmp_path, vision_setup, caption_file):  # noqa: F811
    run = train(_run(tmp_path, vision_setup, caption_file, {"name": "clip", "embedding_dim": 16}))
    losses = _losses(run)
    assert sum(losses[-3:]) < 0.7 * sum(losses[:3])
    final = run / "final"
    assert json.loads((final / "alignment.json").read_text())["pair_with"] == "text"
    base, tuned = load_model(load_config(run / "config.yaml").model), None
    from transformers import AutoModelForImageTextToText

    tuned = AutoModelForImageTextToText.from_pretrained(final).eval()   # plain transformers loads the stage
    before, after = _language_model_state(base), _language_model_state(tuned)
    before_all = base.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)        # the language model stayed frozen
    patch = next(k for k in before_all if k.endswith("patch_embedding.weight"))
    assert not torch.equal(before_all[patch], tuned.state_dict()[patch])   # the tower learned

    aligned = load_alignment(tuned, final)
    tokenizer = load_tokenizer(load_config(run / "config.yaml").model)
    images = load_images(str(final), tuned.config, tokenizer)
    heldout = vision_setup[3]
    image_emb = aligned.embed_images(images.pixel_values([p for p, _ in heldout])["pixel_values"])
    names = list(CAPTIONS)
    encoded = tokenizer([CAPTIONS[n] for n in names], add_special_tokens=False, padding=True, return_tensors="pt")
    text_emb = aligned.embed_texts(encoded["input_ids"], encoded["attention_mask"])
    retrieved = [names[i] for i in (image_emb @ text_emb.T).argmax(1).tolist()]
    assert retrieved == [c for _, c in heldout]                         # unseen shades find their caption

    pairs = tmp_path / "heldout-captions.jsonl"                         # the same through seektune eval's task
    pairs.write_text("".join(json.dumps({"image": p, "text": CAPTIONS[c]}) + "\n" for p, c in heldout))
    scores = retrieval(tuned, tokenizer, images, final, load_examples(pairs), "auto")
    assert scores["by"] == "alignment" and scores["candidates"] == 2
    assert scores["image_to_text_recall@1"] == scores["text_to_image_recall@1"] == 1.0


def test_caption_trains_the_projector_against_a_frozen_language_model(tmp_path, vision_setup,  # noqa: F811
                                                                      caption_file):
    cfg = _run(tmp_path, vision_setup, caption_file, {"name": "caption"},
               method={"name": "full", "vision": {"projector": "train"}}, max_steps=20,
               learning_rate=2e-2)
    assert cfg.method.vision.language_model == "frozen"
    run = train(cfg)
    losses = _losses(run)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.1   # the projector alone lowers it (random LM)
    from transformers import AutoModelForImageTextToText

    base = load_model(cfg.model).state_dict()
    tuned = AutoModelForImageTextToText.from_pretrained(run / "final").state_dict()
    changed = {k for k in base if not torch.equal(base[k], tuned[k])}
    assert changed and all("multi_modal_projector" in k for k in changed)


def test_clip_on_image_views_resumes_to_the_same_projections(tmp_path, vision_setup, caption_file):  # noqa: F811
    """Stage 1 (the tower alone, two augmented views per image), killed after step 3 and resumed: the same
    tower and projections as without the interruption (the views' random shifts come back with the RNG)."""
    objective = {"name": "clip", "embedding_dim": 8, "pair_with": "views"}
    settings = dict(max_steps=6, save_every=3, keep_last=5)
    run = train(_run(tmp_path, vision_setup, caption_file, objective, **settings))
    uninterrupted = load_file(run / "final" / "alignment.safetensors")
    assert set(uninterrupted) == {"image_projection.weight", "logit_scale"}
    tower = load_file(run / "final" / "model.safetensors")
    marker = run / "checkpoints" / "step-3" / "COMPLETE"
    assert (marker.parent / "objective.safetensors").is_file()
    written = marker.stat().st_mtime_ns
    train(_run(tmp_path, vision_setup, caption_file, objective, **settings), resume=True)
    assert marker.stat().st_mtime_ns == written                         # resumed from it, not started over
    resumed = load_file(run / "final" / "alignment.safetensors")
    assert all(torch.equal(uninterrupted[k], resumed[k]) for k in uninterrupted)
    again = load_file(run / "final" / "model.safetensors")
    assert all(torch.equal(tower[k], again[k]) for k in tower)


def test_views_pair_two_augmentations_of_each_image():
    torch.manual_seed(0)
    a = torch.randn(6, 4)
    scale = torch.tensor(2.0)
    assert clip_loss(a, a, scale) < clip_loss(a, torch.randn(6, 4), scale)
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    b = a[[1, 0, 3, 2, 5, 4]]           # each row's partner is its group's other member
    assert clip_loss(a, b, scale, groups) < clip_loss(a, b, scale)   # same-caption rows are not negatives


@pytest.mark.parametrize("sections, message", [
    ({"objective": {"name": "clip"}, "method": {"name": "lora"}}, "method.name=full"),
    ({"objective": {"name": "clip"}, "method": {"name": "full", "vision": {"projector": "train"}}},
     "method.vision.projector"),
    ({"objective": {"name": "caption"}, "method": {"name": "full", "vision": {"language_model": "train"}}},
     "method.vision.language_model"),
])
def test_alignment_stage_configs_fail_naming_the_key(tmp_path, caption_file, sections, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(write_config(tmp_path, tmp_path, caption_file, **sections))


def test_clip_on_a_text_model_says_what_to_do(tmp_path, tiny_llama_dir, caption_file):
    cfg = load_config(write_config(tmp_path, tiny_llama_dir, caption_file, objective={"name": "clip"},
                                   method={"name": "full"}))
    with pytest.raises(ConfigError, match="vision assemble"):
        train(cfg)


def test_recall_counts_ranks_both_ways_with_repeated_captions():
    """Three images, two captions (images 0 and 2 share caption 0): image 1 ranks its caption second; caption 1's
    best image is image 1 only at rank 2."""
    similarity = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    scores = recall_at_k(similarity, [0, 1, 0], ks=(1, 2))
    assert scores["image_to_text_recall@1"] == pytest.approx(1 / 3)      # image 0 only (image 2 prefers caption 1)
    assert scores["image_to_text_recall@2"] == 1.0
    assert scores["text_to_image_recall@1"] == 0.5                      # caption 0 -> image 0; caption 1 -> image 2
    assert scores["image_to_text_mean_rank"] == pytest.approx(5 / 3)
