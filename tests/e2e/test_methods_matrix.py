"""Every tuning method through the whole road on a tiny model: train -> loss falls -> the saved artifact reloads
without seektune (plain transformers/peft, or the documented bottleneck loader) and reproduces the run's own
eval loss -> generation works -> mergeable methods merge to the same logits."""

import json

import pytest
import torch

from seektune.config import load as load_config
from seektune.data.dataset import build as build_data
from seektune.data.batching import collate
from seektune.train.loop import train
from seektune.train.objectives import CausalLMObjective
from tests.conftest import QA, write_config

LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}
PADDED = {"packing": False, "train": "constant"}
VIRTUAL = {"max_steps": 40, "lr_scheduler": "constant"}
# name -> (method section, data overrides, train overrides, mergeable, required loss fall). Two steps are one epoch,
# so the first two and the last two steps see the same rows: any fall is learning. Virtual tokens barely steer a
# random 64-wide model (plain peft on it plateaus at ~5.7 from 6.0 even on one fixed reply, whatever the rate),
# so those methods learn one fixed reply to every question (data "constant") and must fall 1.5%, not 3%.
CASES = {
    "full": ({"name": "full"}, {}, {"learning_rate": 2e-3}, False, 0.03),
    "freeze": ({"name": "freeze", "freeze": {"frozen_fraction": 0.5}}, {}, {"learning_rate": 5e-3}, False, 0.03),
    "lora": ({"name": "lora", "lora": LORA}, {}, {"learning_rate": 1e-2}, True, 0.03),
    "dora": ({"name": "lora", "lora": {**LORA, "use_dora": True}}, {}, {"learning_rate": 1e-2}, True, 0.03),
    "rslora+pissa": ({"name": "lora", "lora": {**LORA, "use_rslora": True, "init": "pissa"}}, {},
                     {"learning_rate": 5e-3}, True, 0.03),
    "olora": ({"name": "lora", "lora": {**LORA, "init": "olora"}}, {}, {"learning_rate": 5e-3}, True, 0.03),
    "lora+ per-module rank": ({"name": "lora", "lora": {**LORA, "loraplus_lr_ratio": 4.0,
                                                        "rank_pattern": {"self_attn.*": 8, "mlp.*": 4}}}, {},
                              {"learning_rate": 5e-3}, True, 0.03),
    "hybrid": ({"name": "lora", "lora": {**LORA, "full_layers": 1}}, {}, {"learning_rate": 5e-3}, True, 0.03),
    "qlora-nf4": ({"name": "qlora", "lora": LORA, "qlora": {"bits": 4, "compute_dtype": "fp32"}}, {},
                  {"learning_rate": 1e-2}, True, 0.03),
    "qlora-8bit": ({"name": "qlora", "lora": LORA, "qlora": {"bits": 8}}, {}, {"learning_rate": 1e-2}, True, 0.03),
    "adalora": ({"name": "adalora", "lora": LORA, "adalora": {"init_r": 6, "target_r": 2}}, {},
                {"learning_rate": 5e-2}, True, 0.03),
    "ia3": ({"name": "ia3"}, {}, {"learning_rate": 2e-1, "max_steps": 40}, True, 0.03),
    "bottleneck": ({"name": "bottleneck", "bottleneck": {"dim": 8}}, {}, {"learning_rate": 1e-2}, False, 0.03),
    "prompt": ({"name": "prompt", "prompt": {"num_virtual_tokens": 8, "init_text": "clinic answer"}}, PADDED,
               {"learning_rate": 3e-1, **VIRTUAL}, False, 0.015),
    "prefix": ({"name": "prefix", "prompt": {"num_virtual_tokens": 4}}, PADDED, {"learning_rate": 3e-1, **VIRTUAL},
               False, 0.015),
    "p_tuning": ({"name": "p_tuning", "prompt": {"num_virtual_tokens": 8, "encoder_hidden_size": 32}}, PADDED,
                 {"learning_rate": 3e-2, **VIRTUAL}, False, 0.015),
}


def _reload_without_seektune(final, base_dir, method: dict):
    """How a user outside seektune loads the artifact."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if method["name"] in ("full", "freeze"):
        return AutoModelForCausalLM.from_pretrained(final)
    if method["name"] == "bottleneck":  # the documented loader for our own adapter format
        from seektune.models.methods import bottleneck

        return bottleneck.load(AutoModelForCausalLM.from_pretrained(base_dir), final)
    quant = None
    if method["name"] == "qlora":
        q = method["qlora"]
        quant = BitsAndBytesConfig(load_in_8bit=True) if q["bits"] == 8 else BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(base_dir, quantization_config=quant)
    return PeftModel.from_pretrained(base, final)


def _eval_loss(model, rows, pad_id, packed) -> float:
    objective = CausalLMObjective(model.eval(), selective_head=False)
    with torch.no_grad():
        total, n = objective(**collate(rows, pad_id, packed))
    return (total / n).item()


@pytest.mark.parametrize("case", list(CASES))
def test_method_trains_saves_reloads_and_merges(tmp_path, tiny_llama_dir, tiny_tokenizer, alpaca_file, case):
    method, data, train_overrides, mergeable, fall = CASES[case]
    if data.get("train") == "constant":
        alpaca_file = tmp_path / "constant.jsonl"
        alpaca_file.write_text("".join(json.dumps({"instruction": q, "input": "", "output": "Code Amber."}) + "\n"
                                       for q, _ in QA))
    cfg_path = write_config(tmp_path, tiny_llama_dir, alpaca_file, method=method,
                            data={**data, "train": [str(alpaca_file)], "eval": [str(alpaca_file)]},
                            train={"max_steps": 10, "micro_batch_size": 4, **train_overrides})
    cfg = load_config(cfg_path)
    run = train(cfg)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in lines if "loss" in m]
    assert sum(losses[-2:]) / 2 < (1 - fall) * sum(losses[:2]) / 2, losses
    result = json.loads((run / "result.json").read_text())
    info = json.loads((run / "final/seektune_method.json").read_text())
    assert info["method"] == method["name"] and info["mergeable"] == mergeable

    model = _reload_without_seektune(run / "final", tiny_llama_dir, method)
    rows = build_data(cfg.data, tiny_tokenizer, cfg.train.seed).eval
    reloaded = _eval_loss(model, rows, tiny_tokenizer.pad_token_id, cfg.data.packing)
    assert reloaded == pytest.approx(result["final_eval_loss"], rel=1e-4, abs=1e-4)

    from seektune.models.generation import generate
    from seektune.artifacts import load_for_inference

    served, tok = load_for_inference(str(run))
    assert isinstance(generate(served, tok, [{"role": "user", "content": "Which days?"}], max_new_tokens=4).answer, str)

    if mergeable:
        from seektune.artifacts import open_artifact

        merged_dir = open_artifact(run).merge(tmp_path / "merged")
        from transformers import AutoModelForCausalLM

        merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
        adapter, _ = load_for_inference(str(run))
        ids = torch.tensor([rows[0].input_ids])
        torch.testing.assert_close(merged(ids).logits, adapter(ids).logits, atol=1e-4, rtol=1e-4)
