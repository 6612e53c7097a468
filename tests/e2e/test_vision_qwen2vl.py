"""Vision-language fine-tuning on a tiny Qwen2-VL built in-process (a 2-layer text model with M-RoPE, a 1-block
vision tower whose merger is the projector, the tiny BPE tokenizer with Qwen2-VL's vision tokens): the LoRA model
learns to answer from the image (red vs blue squares it has not seen), reloads with plain transformers + peft and
its processor, answers through seektune's chat; training prompts are the inference prompts token for token (the
image's pad token expanded to the processor's count, M-RoPE positions per sample, also in packed rows); every method
keeps the tower's blocks frozen and trains the merger as configured.

transformers 5 builds a Qwen2-VL processor only with a video processor, and its video processors need torchvision,
which the test environment lacks (the torchvision wheel for torch 2.13 links CUDA torch libraries the CPU torch does
not have). Without torchvision a stand-in video processor is registered for this module (`_video_processor`); images
never touch it, so every image path is transformers' own.
"""

import importlib
import importlib.util
import json

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from seektune.cli import main
from seektune.config import load as load_config
from seektune.data.render import IGNORE, Renderer
from seektune.models.loading import load_model
from seektune.models.vision import load_images
from seektune.train.loop import train
from seektune.train.objectives import CausalLMObjective
from tests.conftest import _train_tokenizer
from tests.e2e.test_vision import _config, assert_merge_keeps_logits, assert_packed_equals_apart

COLOURS = {"red": 0, "blue": 2}
VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
IMAGE_TEXT = "<|vision_start|><|image_pad|><|vision_end|>"
SIDE = 28   # patch 7 x merge 2 = 14: a 28 px square is a 4 x 4 patch grid, 2 x 2 = 4 image tokens; 56 x 28: 8
QUESTION = "What colour is it?"


def _square(path, colour: str, shade: int, side: int = SIDE, width: int | None = None):
    pixels = np.zeros((side, width or side, 3), dtype=np.uint8)
    pixels[..., COLOURS[colour]] = shade
    Image.fromarray(pixels).save(path)
    return path


def _colour_data(folder, n: int, shades=range(150, 256, 7), side: int = SIDE) -> list[tuple[str, str]]:
    folder.mkdir(exist_ok=True)
    shades = list(shades)
    out = []
    for i in range(n):
        colour = ("red", "blue")[i % 2]
        out.append((str(_square(folder / f"{i}.png", colour, shades[(i // 2) % len(shades)], side)), colour))
    return out


@pytest.fixture(scope="module")
def _video_processor():
    """A video processor for the Qwen2-VL processor: Qwen2-VL's own with torchvision; without it a stand-in class
    transformers accepts (the processor's constructor checks for one; AutoProcessor loads one through
    AutoVideoProcessor, which refuses without torchvision)."""
    if importlib.util.find_spec("torchvision") is not None:
        from transformers import Qwen2VLVideoProcessor

        yield lambda: Qwen2VLVideoProcessor(patch_size=7, merge_size=2, temporal_patch_size=2)
        return
    import transformers.processing_utils as processing_utils
    from transformers.video_processing_utils import VideoProcessorMixin

    class NoVideos(VideoProcessorMixin):
        merge_size = 2

        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            return cls()

    video_processing_auto = importlib.import_module("transformers.models.auto.video_processing_auto")
    auto = video_processing_auto.AutoVideoProcessor
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(processing_utils.transformers_module, "VideoProcessorMixin", VideoProcessorMixin,
                      raising=False)
        video_processing_auto.AutoVideoProcessor = NoVideos
        try:
            yield NoVideos
        finally:
            video_processing_auto.AutoVideoProcessor = auto


def _tiny_qwen2vl(path: Path, video_processor) -> Path:
    """A random Qwen2-VL and its processor saved in `path`: the tiny BPE tokenizer plus the vision tokens."""
    from transformers import (Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessorPil,
                              Qwen2VLProcessor)

    tokenizer = _train_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": VISION_TOKENS})
    ids = dict(zip(VISION_TOKENS, tokenizer.convert_tokens_to_ids(VISION_TOKENS)))
    torch.manual_seed(0)
    config = Qwen2VLConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "max_position_embeddings": 512, "bos_token_id": tokenizer.bos_token_id,
                     "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
                     # head_dim 16: 8 rotary frequencies split over (time, height, width)
                     "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}},
        vision_config={"depth": 1, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2,
                       "patch_size": 7, "spatial_merge_size": 2, "temporal_patch_size": 2},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False)
    model = Qwen2VLForConditionalGeneration(config)
    image_processor = Qwen2VLImageProcessorPil(patch_size=7, merge_size=2, temporal_patch_size=2,
                                               min_pixels=SIDE * SIDE, max_pixels=4 * SIDE * SIDE)
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=video_processor(), chat_template=tokenizer.chat_template)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def qwen_setup(tmp_path_factory, _video_processor):
    """The model directory and a ShareGPT file of coloured squares, plus held-out shades."""
    root = tmp_path_factory.mktemp("qwen2vl")
    model_dir = _tiny_qwen2vl(root / "model", _video_processor)
    train_images = _colour_data(root / "images", 16)
    records = [{"conversations": [{"from": "human", "value": f"<image>\n{QUESTION}"},
                                  {"from": "gpt", "value": f"It is {colour}."}], "images": [path]}
               for path, colour in train_images]
    data = root / "colours.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    heldout = _colour_data(root / "heldout", 4, shades=[160, 181, 222, 243])   # shades training never showed
    return root, model_dir, data, heldout


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, qwen_setup):
    tmp = tmp_path_factory.mktemp("qwen-lora-run")
    cfg = _config(tmp, qwen_setup, train={"max_steps": 100, "micro_batch_size": 4, "learning_rate": 1e-2,
                                          "precision": "fp32", "warmup_ratio": 0.0, "seed": 3},
                  method={"name": "lora", "lora": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}})
    assert main(["train", str(cfg)]) == 0
    return tmp / "runs" / "run"


def _user_inputs(processor, image_path: str, earlier: list[tuple[str, str]] = ()):
    """How a transformers user asks about an image: it is Qwen2-VL's vision block in the user's text; `earlier`
    (image, answer) turns come first."""
    messages = []
    for path, answer in earlier:
        messages += [{"role": "user", "content": f"{IMAGE_TEXT}\n{QUESTION}"}, {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": f"{IMAGE_TEXT}\n{QUESTION}"})
    text = processor.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    images = [Image.open(path).convert("RGB") for path in [*(p for p, _ in earlier), image_path]]
    return processor(images=images, text=[text], return_tensors="pt")


def _plain_answer(model, processor, image_path: str, earlier: list[tuple[str, str]] = ()) -> str:
    inputs = _user_inputs(processor, image_path, earlier)
    out = model.generate(**inputs, max_new_tokens=10, do_sample=False)
    return processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def _losses(run) -> list[float]:
    return [m["loss"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in m]


def test_lora_reads_the_image_and_reloads_without_seektune(lora_run, qwen_setup):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    _, model_dir, _, heldout = qwen_setup
    losses = _losses(lora_run)
    assert sum(losses[-3:]) < 0.85 * sum(losses[:3])   # a random head's logits stay small: ~4.8 from ~5.8
    assert json.loads((lora_run / "data_report.json").read_text())["train_images"] == 16
    final = lora_run / "final"
    assert (final / "processor_config.json").is_file()
    processor = AutoProcessor.from_pretrained(final)
    assert type(processor).__name__ == "Qwen2VLProcessor"
    model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(model_dir), final).eval()
    answers = [_plain_answer(model, processor, path) for path, _ in heldout]
    assert answers == [f"It is {colour}." for _, colour in heldout]   # both colours: the answer comes from the image

    weights = load_file(final / "adapter_model.safetensors")
    assert any(".visual.merger." in k for k in weights)                 # the merger (projector) trained, saved whole
    assert not any(".visual.blocks." in k or ".visual.patch_embed." in k for k in weights)   # the tower's own: frozen
    assert all("language_model" in k for k in weights if "lora_" in k)


def test_chat_with_an_image_from_the_cli_and_the_session(lora_run, qwen_setup, capsys):
    """seektune's chat answers the image; with a second image in one history (which training never showed, so
    the tiny model is not right there) it answers exactly what transformers answers for the same conversation."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from seektune.inference.session import ChatSession

    _, model_dir, _, heldout = qwen_setup
    (red, _), (blue, _) = heldout[0], heldout[1]
    assert main(["chat", str(lora_run), "--image", red, "--prompt", QUESTION, "--max-new-tokens", "10"]) == 0
    assert capsys.readouterr().out.strip().endswith("It is red.")
    session = ChatSession.open([str(lora_run)], max_new_tokens=10)
    assert session.ask(QUESTION, images=[blue]) == "It is blue."
    second = session.ask(QUESTION, images=[red])
    assert len(session.image_files) == 2
    processor = AutoProcessor.from_pretrained(lora_run / "final")
    model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(model_dir),
                                      lora_run / "final").eval()
    assert second == _plain_answer(model, processor, red, earlier=[(blue, "It is blue.")]).strip()


def test_the_merged_model_gives_the_adapters_logits(lora_run, qwen_setup, tmp_path):
    _, _, _, heldout = qwen_setup
    assert_merge_keeps_logits(lora_run, tmp_path, lambda processor: _user_inputs(processor, heldout[0][0]))


def _samples(renderer, pictures: list[tuple[str, str]]):
    """One training sample per (image, colour), rendered by seektune."""
    return [renderer.conversation([{"role": "user", "content": f"<image>\n{QUESTION}"},
                                   {"role": "assistant", "content": f"It is {colour}."}], images=[path])[0]
            for path, colour in pictures]


def test_the_training_prompt_is_the_inference_prompt(qwen_setup, tmp_path):
    """The ids seektune trains a sample on start with exactly the ids Qwen2-VL's processor gives the same
    question at inference, the image's pad token repeated as often as the processor repeats it for its size."""
    from transformers import AutoConfig, AutoProcessor, AutoTokenizer

    _, model_dir, _, heldout = qwen_setup
    wide = str(_square(tmp_path / "wide.png", "blue", 200, width=2 * SIDE))
    processor = AutoProcessor.from_pretrained(model_dir)
    images = load_images(str(model_dir), AutoConfig.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir))
    assert images.token == IMAGE_TEXT
    assert (images.count(heldout[0][0]), images.count(wide)) == (4, 8)   # merged patches: 2 x 2, 2 x 4
    renderer = Renderer(images.processor.tokenizer, max_length=128, images=images)
    for sample, (path, colour) in zip(_samples(renderer, [heldout[0], (wide, "blue")]), [heldout[0], (wide, "blue")]):
        expected = _user_inputs(processor, path)["input_ids"][0].tolist()
        assert sample.input_ids[:len(expected)] == expected
        assert renderer.prompt_ids([{"role": "user", "content": f"<image>\n{QUESTION}"}], [path]) == expected
        assert all(t == IGNORE for t in sample.targets[:len(expected) - 1])
        answer = [t for t in sample.targets if t != IGNORE]
        assert images.processor.tokenizer.decode(answer).startswith(f"It is {colour}.")
        assert sample.images == [path]


def test_packed_rows_give_each_image_its_own_sample(tmp_path, qwen_setup):
    """One packed row of samples scores exactly what the samples score alone: the block-diagonal mask holds, the
    images land at their own tokens, and each sample gets its own M-RoPE positions."""
    _, model_dir, _, _ = qwen_setup
    assert_packed_equals_apart(load_config(_config(tmp_path, qwen_setup)), model_dir)


def test_training_scores_what_the_model_scores_with_its_own_positions(qwen_setup, tmp_path):
    """The objective's loss on a padded batch (a square and a wide image) equals transformers' own forward on each
    sample with the processor's token types, from which it computes Qwen2-VL's M-RoPE positions itself: training
    sees each image where inference sees it. Queries and keys are scaled up so attention is sharp enough for
    positions to matter (at initialisation it is near uniform)."""
    import torch.nn.functional as F

    from seektune.data.batching import unpacked

    _, model_dir, _, heldout = qwen_setup
    cfg = load_config(_config(tmp_path, qwen_setup))
    model = load_model(cfg.model).eval()
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "language_model" in name and ("q_proj.weight" in name or "k_proj.weight" in name):
                weight.mul_(8)
    images = load_images(str(model_dir), model.config)
    tokenizer = images.processor.tokenizer
    wide = str(_square(tmp_path / "wide.png", "red", 200, width=2 * SIDE))
    rows = unpacked(_samples(Renderer(tokenizer, 128, images=images), [(wide, "red"), heldout[1]]))
    objective = CausalLMObjective(model)
    objective.images = images
    expected = torch.tensor(0.0)
    with torch.no_grad():
        loss, n = objective(**objective.collate(rows, tokenizer.pad_token_id, packed=False))
        for row in rows:
            ids = torch.tensor([row.input_ids])
            logits = model(input_ids=ids, mm_token_type_ids=(ids == model.config.image_token_id).int(),
                           **images.pixel_values(row.images)).logits[0]
            targets = torch.tensor(row.targets)
            expected += F.cross_entropy(logits[targets != IGNORE], targets[targets != IGNORE], reduction="sum")
    assert int(n) == sum(row.supervised for row in rows)
    torch.testing.assert_close(loss, expected, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("method, tower_trains, merger_trains", [
    ({"name": "full", "vision": {"projector": "frozen"}}, False, False),
    ({"name": "full", "vision": {"tower": "train"}}, True, True),
    ({"name": "freeze", "freeze": {"trainable_layers": 1}}, False, True),
])
def test_whole_model_methods_train_the_tower_and_merger_as_configured(tmp_path, qwen_setup, method, tower_trains,
                                                                      merger_trains):
    """The merger sits inside the tower module (model.visual.merger): the tower's own blocks stay frozen unless
    configured to train, whatever the merger does."""
    from transformers import AutoModelForImageTextToText

    _, model_dir, _, _ = qwen_setup
    cfg = _config(tmp_path, qwen_setup, method=method, train={"max_steps": 3, "micro_batch_size": 4,
                                                              "learning_rate": 1e-2, "precision": "fp32"})
    run = train(load_config(cfg))
    before = AutoModelForImageTextToText.from_pretrained(model_dir).state_dict()
    after = AutoModelForImageTextToText.from_pretrained(run / "final").state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    tower = {k for k in before if k.startswith("model.visual.") and ".merger." not in k}
    assert changed and (tower <= changed if tower_trains else not tower & changed)
    assert any(".visual.merger." in k for k in changed) == merger_trains
    assert any("language_model.layers.1." in k for k in changed)
    assert any("language_model.layers.0." in k for k in changed) == (method["name"] == "full")


@pytest.mark.parametrize("method, tower_adapted", [
    ({"name": "qlora", "lora": {"r": 4, "lora_dropout": 0.0}, "qlora": {"bits": 4, "compute_dtype": "fp32"}}, False),
    ({"name": "lora", "lora": {"r": 4, "lora_dropout": 0.0}, "vision": {"tower": "train"}}, True),
])
def test_lora_family_adapts_the_tower_only_when_configured(tmp_path, qwen_setup, method, tower_adapted):
    """LoRA goes into the language model (and the tower's blocks when the tower trains), never into the merger,
    which trains whole and is saved beside the adapter."""
    cfg = _config(tmp_path, qwen_setup, method=method,
                  train={"max_steps": 6, "micro_batch_size": 4, "learning_rate": 1e-2, "precision": "fp32"})
    run = train(load_config(cfg))
    losses = _losses(run)
    assert sum(losses[-2:]) < sum(losses[:2])
    weights = load_file(run / "final" / "adapter_model.safetensors")
    adapted = {k for k in weights if "lora_" in k}
    assert any("language_model" in k for k in adapted)
    assert any(".visual.blocks." in k for k in adapted) == tower_adapted
    assert not any(".visual.merger." in k or ".visual.patch_embed." in k for k in adapted)
    assert any(".visual.merger." in k for k in weights.keys() - adapted)
    assert not any(".visual.blocks." in k or ".visual.patch_embed." in k for k in weights.keys() - adapted)
