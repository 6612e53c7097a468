"""Vision-language fine-tuning on a tiny LLaVA assembled in-process (a 2-layer Llama + a new 2-layer CLIP tower):
the model learns to answer from the image (red vs blue squares it has not seen), the artifact reloads with plain
transformers + peft and its processor, merges to the same logits, and every method keeps the tower frozen and
trains the projector as configured."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from seektune.cli import main
from seektune.config import load as load_config
from seektune.data.dataset import build as build_data
from seektune.models.loading import load_model
from seektune.models.vision import load_images
from seektune.train.loop import train
from seektune.train.objectives import CausalLMObjective
from tests.conftest import write_config

COLOURS = {"red": 0, "blue": 2}


def _square(path, colour: str, shade: int):
    pixels = np.zeros((16, 16, 3), dtype=np.uint8)
    pixels[..., COLOURS[colour]] = shade
    Image.fromarray(pixels).save(path)
    return path


def _colour_data(folder, n: int, shades=range(150, 256, 7)) -> list[tuple[str, str]]:
    folder.mkdir(exist_ok=True)
    shades = list(shades)
    out = []
    for i in range(n):
        colour = ("red", "blue")[i % 2]
        out.append((str(_square(folder / f"{i}.png", colour, shades[(i // 2) % len(shades)])), colour))
    return out


@pytest.fixture(scope="module")
def vision_setup(tmp_path_factory, tiny_llama_dir):
    """The assembled model (through `seektune vision assemble`) and a ShareGPT file of coloured squares."""
    root = tmp_path_factory.mktemp("vision")
    assert main(["vision", "assemble", "--text", str(tiny_llama_dir), "--out", str(root / "llava"),
                 "--vision-hidden", "32", "--vision-heads", "2"]) == 0
    train_images = _colour_data(root / "images", 16)
    records = [{"conversations": [{"from": "human", "value": "<image>\nWhat colour is it?"},
                                  {"from": "gpt", "value": f"It is {colour}."}], "images": [path]}
               for path, colour in train_images]
    data = root / "colours.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    heldout = _colour_data(root / "heldout", 4, shades=[160, 181, 222, 243])   # shades training never showed
    return root, root / "llava", data, heldout


def _config(tmp_path, setup, **sections):
    _, model_dir, data, _ = setup
    return write_config(tmp_path, model_dir, data, **{"data": {"train": [str(data)], "max_length": 64}, **sections})


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, vision_setup):
    tmp = tmp_path_factory.mktemp("lora-run")
    cfg = _config(tmp, vision_setup, train={"max_steps": 30, "micro_batch_size": 4, "learning_rate": 5e-3,
                                            "precision": "fp32", "warmup_ratio": 0.0, "seed": 3},
                  method={"name": "lora", "lora": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}})
    assert main(["train", str(cfg)]) == 0
    return tmp / "runs" / "run"


def _plain_answer(model, processor, image_path: str) -> str:
    """How a transformers user asks the trained model about an image."""
    messages = [{"role": "user", "content": "<image>\nWhat colour is it?"}]
    text = processor.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(images=[Image.open(image_path).convert("RGB")], text=[text], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=10, do_sample=False)
    return processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def test_lora_reads_the_image_and_reloads_without_seektune(lora_run, vision_setup):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    _, model_dir, _, heldout = vision_setup
    losses = [m["loss"] for m in map(json.loads, (lora_run / "metrics.jsonl").read_text().splitlines()) if "loss" in m]
    assert sum(losses[-3:]) < 0.85 * sum(losses[:3])
    assert json.loads((lora_run / "data_report.json").read_text())["train_images"] == 16
    final = lora_run / "final"
    assert (final / "processor_config.json").is_file()
    processor = AutoProcessor.from_pretrained(final)
    model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(model_dir), final).eval()
    answers = [_plain_answer(model, processor, path) for path, _ in heldout]
    assert answers == [f"It is {colour}." for _, colour in heldout]   # both colours: the answer comes from the image

    weights = load_file(final / "adapter_model.safetensors")
    assert any("multi_modal_projector" in k for k in weights)           # the projector trained, saved whole
    assert not any("vision_tower" in k for k in weights)                # the tower stayed frozen
    assert all("language_model" in k for k in weights if "lora_" in k)


def test_chat_with_an_image_from_the_cli_and_the_session(lora_run, vision_setup, capsys):
    from seektune.inference.session import ChatSession

    _, _, _, heldout = vision_setup
    (red, _), (blue, _) = heldout[0], heldout[1]
    assert main(["chat", str(lora_run), "--image", red, "--prompt", "What colour is it?",
                 "--max-new-tokens", "10"]) == 0
    assert capsys.readouterr().out.strip().endswith("It is red.")
    session = ChatSession.open([str(lora_run)], max_new_tokens=10)
    assert session.ask("What colour is it?", images=[blue]) == "It is blue."
    assert session.ask("What colour is it?", images=[red]) == "It is red."   # a second image in one history
    assert len(session.image_files) == 2


def test_the_merged_model_gives_the_adapters_logits(lora_run, vision_setup, tmp_path):
    _, _, _, heldout = vision_setup
    assert_merge_keeps_logits(lora_run, tmp_path, lambda processor: processor(
        images=[Image.open(heldout[0][0]).convert("RGB")], text=["<image>\nWhat colour?"], return_tensors="pt"))


def assert_merge_keeps_logits(run, tmp_path, inputs_of) -> None:
    """The run's adapter merged into its base (processor kept beside it) gives the adapter's logits on the
    inputs `inputs_of(processor)` builds."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from seektune.artifacts import open_artifact

    artifact = open_artifact(run)
    merged_dir = artifact.merge(tmp_path / "merged")
    inputs = inputs_of(AutoProcessor.from_pretrained(merged_dir))
    merged = AutoModelForImageTextToText.from_pretrained(merged_dir).eval()
    adapter, _ = artifact.load()
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, adapter(**inputs).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method, projector_trains", [
    ({"name": "full", "vision": {"projector": "frozen"}}, False),
    ({"name": "freeze", "freeze": {"trainable_layers": 1}}, True),
])
def test_whole_model_methods_keep_the_tower_frozen(tmp_path, vision_setup, method, projector_trains):
    from transformers import AutoModelForImageTextToText

    _, model_dir, _, _ = vision_setup
    cfg = _config(tmp_path, vision_setup, method=method, train={"max_steps": 4, "micro_batch_size": 4,
                                                                "learning_rate": 1e-2, "precision": "fp32"})
    run = train(load_config(cfg))
    before = AutoModelForImageTextToText.from_pretrained(model_dir).state_dict()
    after = AutoModelForImageTextToText.from_pretrained(run / "final").state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and not any("vision_tower" in k for k in changed)
    assert any("multi_modal_projector" in k for k in changed) == projector_trains
    assert any("language_model.layers.1." in k for k in changed)
    assert not any("language_model.layers.0." in k for k in changed) == (method["name"] == "freeze")


def test_packed_rows_give_each_image_to_its_own_sample(tmp_path, vision_setup):
    """One packed row of two samples scores exactly what the two samples score alone: the block-diagonal mask
    holds and the images land at their own tokens, in order."""
    _, model_dir, _, _ = vision_setup
    assert_packed_equals_apart(load_config(_config(tmp_path, vision_setup)), model_dir)


def assert_packed_equals_apart(cfg, model_dir) -> None:
    """A packed row holding two or more samples with images scores exactly the sum of those samples alone."""
    model = load_model(cfg.model).eval()
    images = load_images(str(model_dir), model.config)
    tokenizer = images.processor.tokenizer
    packed = build_data(cfg.data.model_copy(update={"packing": True, "max_length": 128}), tokenizer, 0,
                        images=images).train
    single = build_data(cfg.data.model_copy(update={"packing": False}), tokenizer, 0, images=images).train
    objective = CausalLMObjective(model)
    objective.images = images
    row = next(r for r in packed if len(r.images) >= 2)
    alone = [r for r in single if r.images[0] in row.images]
    with torch.no_grad():
        together, n = objective(**objective.collate([row], tokenizer.pad_token_id, packed=True))
        apart = [objective(**objective.collate([r], tokenizer.pad_token_id, packed=False)) for r in alone]
    assert int(n) == sum(int(k) for _, k in apart)
    torch.testing.assert_close(together, sum(loss for loss, _ in apart), atol=1e-4, rtol=1e-5)


def test_assemble_keeps_a_pretrained_vision_tower(tmp_path, tiny_llama_dir):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from seektune.models.vision_build import assemble_llava

    tower = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                             num_attention_heads=2, image_size=16, patch_size=8))
    tower.save_pretrained(tmp_path / "clip")
    model, processor = assemble_llava(str(tiny_llama_dir), str(tmp_path / "clip"))
    for name, value in tower.state_dict().items():
        assert torch.equal(model.model.vision_tower.state_dict()[name], value), name
    inputs = processor(images=[Image.new("RGB", (20, 12), "red")], text=["<image> hi"], return_tensors="pt")
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 4   # (16 / 8)^2 patches
    assert model(**inputs).logits.shape[1] == inputs["input_ids"].shape[1]


@pytest.mark.parametrize("method", [
    {"name": "adalora", "lora": {"r": 4, "lora_dropout": 0.0}, "adalora": {"init_r": 6, "target_r": 2}},
    {"name": "qlora", "lora": {"r": 4, "lora_dropout": 0.0}, "qlora": {"bits": 4, "compute_dtype": "fp32"}},
])
def test_lora_family_adapts_the_language_model_only(tmp_path, vision_setup, method):
    cfg = _config(tmp_path, vision_setup, method=method, train={"max_steps": 6, "micro_batch_size": 4,
                                                                "learning_rate": 1e-2, "precision": "fp32"})
    run = train(load_config(cfg))
    weights = load_file(run / "final" / "adapter_model.safetensors")
    adapted = {k for k in weights if "lora_" in k}
    assert adapted and all("language_model" in k for k in adapted)
    assert any("multi_modal_projector" in k for k in weights) and not any("vision_tower" in k for k in weights)


def test_eval_answers_image_questions_and_retrieves_by_likelihood(lora_run, vision_setup, tmp_path):
    """`seektune eval` on held-out squares: the tuned model answers from the image (EM 1, the base does not), and
    the likelihood retrieval finds each image's answer among the task's answers both ways."""
    import yaml

    _, model_dir, _, heldout = vision_setup
    data = tmp_path / "heldout.jsonl"
    data.write_text("".join(json.dumps({"question": "What colour is it?", "reference": f"It is {colour}.",
                                        "image": path}) + "\n" for path, colour in heldout))
    spec = {"models": [{"name": "base", "path": str(model_dir)}, {"name": "tuned", "path": str(lora_run)}],
            "tasks": [{"name": "colour", "data": str(data)},
                      {"name": "match", "type": "retrieval", "data": str(data)}],
            "generation": {"max_new_tokens": 8},
            "efficiency": {"prompts": 1, "max_new_tokens": 2}, "output_dir": str(tmp_path / "eval")}
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(spec))
    assert main(["eval", str(tmp_path / "eval.yaml")]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    colour, match = report["tasks"]["colour"]["models"], report["tasks"]["match"]["models"]
    assert colour["tuned"]["clean"]["exact_match"] == 1.0
    assert colour["base"]["clean"]["exact_match"] == 0.0
    assert "typo" in colour["tuned"]                    # the typo pass ran around the image placeholder
    assert match["tuned"]["clean"]["by"] == "likelihood" and match["tuned"]["clean"]["candidates"] == 2
    assert match["tuned"]["clean"]["image_to_text_recall@1"] == 1.0
    assert match["tuned"]["clean"]["text_to_image_recall@1"] == 1.0
    assert report["efficiency"]["tuned"]["tokens_per_s"] > 0   # timed with the image's pixels
    assert "image_to_text_recall@1" in (tmp_path / "eval" / "report.md").read_text()


def test_eval_refuses_image_tasks_for_a_text_model(tiny_llama_dir, vision_setup, tmp_path):
    import yaml

    from seektune.errors import DataError
    from seektune.evaluate import eval_config
    from seektune.evaluate.runner import Runner

    path, colour = vision_setup[3][0]
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"question": "What colour?", "reference": colour, "image": path}) + "\n")
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump({"models": [{"name": "text", "path": str(tiny_llama_dir)}],
                                                        "tasks": [{"name": "q", "data": str(data)}]}))
    with pytest.raises(DataError, match="task q has images, but model text .* reads text only"):
        Runner(eval_config.load(tmp_path / "eval.yaml")).run()


def _data_url(path: str) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(open(path, "rb").read()).decode()


def test_the_server_answers_image_url_parts(lora_run, vision_setup, tmp_path):
    """OpenAI clients send images as data URLs in content parts: each answer comes from its own image, also when
    requests share one prefill (the cache never answers one image with another's answer), and paths are refused."""
    import threading
    import time

    import httpx
    import openai

    from seektune.serve.process import start_server

    _, _, _, heldout = vision_setup
    proc = start_server([str(lora_run), "--threads", "1", "--max-batch", "4"], tmp_path / "server.log")
    try:
        for _ in range(200):
            if httpx.get(f"{proc.url}/health").status_code == 200:
                break
            time.sleep(0.1)
        client = openai.OpenAI(base_url=f"{proc.url}/v1", api_key="none", max_retries=0, timeout=60)

        def ask(path: str, url: str | None = None) -> str:
            parts = [{"type": "image_url", "image_url": {"url": url or _data_url(path)}},
                     {"type": "text", "text": "What colour is it?"}]
            reply = client.chat.completions.create(model="run", messages=[{"role": "user", "content": parts}],
                                                   max_tokens=8, temperature=0)
            return reply.choices[0].message.content

        answers = [ask(path) for path, _ in heldout]
        assert answers == [f"It is {colour}." for _, colour in heldout]
        together: dict[int, str] = {}
        threads = [threading.Thread(target=lambda i=i: together.__setitem__(i, ask(heldout[i][0]))) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [together[i] for i in range(4)] == answers
        with pytest.raises(openai.BadRequestError, match="data URL"):
            ask(heldout[0][0], url=heldout[0][0])
        with pytest.raises(openai.BadRequestError, match="unreadable image"):
            ask(heldout[0][0], url="data:image/png;base64,aGVsbG8=")
    finally:
        proc.stop()


def test_one_prefill_gives_each_row_its_own_image(lora_run, vision_setup):
    """All four held-out squares queued before the engine starts share one prefill (and a text-only row joins
    them): each row answers its own image, and none of them leaves or reuses prefix KV."""
    from seektune.data.render import Renderer
    from seektune.serve.catalog import load_catalog
    from seektune.serve.engine.base import GenerationRequest
    from seektune.serve.engine.batched import BatchedEngine
    from tests.unit.serve.test_serve_engine import Collector

    _, _, _, heldout = vision_setup
    catalog = load_catalog([str(lora_run)])
    served = catalog.models["run"]
    renderer = Renderer(served.tokenizer, 1 << 30, images=served.images)
    question = [{"role": "user", "content": "<image>\nWhat colour is it?"}]
    engine = BatchedEngine(catalog.model, 512, max_batch=8)
    collector = Collector(len(heldout) + 1)
    for i, (path, _) in enumerate(heldout):
        engine.submit(GenerationRequest(renderer.prompt_ids(question, [path]), 8, collector.sink(i),
                                        stop_ids=served.stop_ids, image_inputs=served.images.pixel_values([path])))
    text_only = renderer.prompt_ids([{"role": "user", "content": "What colour is it?"}])
    engine.submit(GenerationRequest(text_only, 3, collector.sink(len(heldout)), stop_ids=served.stop_ids))
    engine.start()
    try:
        collector.wait()
    finally:
        engine.stop()
    answers = [served.tokenizer.decode(collector.tokens[i], skip_special_tokens=True) for i in range(len(heldout))]
    assert answers == [f"It is {colour}." for _, colour in heldout]
    assert collector.finished[len(heldout)].reason in ("stop", "length")
    assert engine.prefix_reused_tokens == 0 and len(engine.prefixes._entries) == 1   # the text row's KV only
