"""What `seektune serve` loads for each kind of argument, and the merged directory other servers read: vLLM and
TGI take config.json, the weights, the tokenizer with its chat template, and stop at
generation_config.eos_token_id, which must hold the template's end-of-turn token."""

import json

import pytest
import torch

from seektune.cli import main
from seektune.errors import ModelError
from seektune.serve.catalog import load_catalog
from seektune.serve.engine.batched import BASE_ADAPTER
from tests.conftest import QA, make_tiny_llama, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_tokenizer):
    """A LoRA run on a base whose config names <unk> as EOS (as many base models name a pre-training EOS that
    is not the chat template's end of turn)."""
    root = tmp_path_factory.mktemp("catalog")
    base = make_tiny_llama(root / "base", tiny_tokenizer)
    for name in ("config.json", "generation_config.json"):
        config = json.loads((base / name).read_text())
        config["eos_token_id"] = tiny_tokenizer.unk_token_id
        (base / name).write_text(json.dumps(config))
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n" for q, a in QA))
    assert main(["train", str(write_config(root / "cfg", base, data, output={"dir": str(root / "runs"),
                                                                                  "name": "clinic"}))]) == 0
    return root / "runs" / "clinic"


def test_one_adapter_is_served_merged_and_no_merge_keeps_the_base_beside_it(run):
    merged = load_catalog([str(run)])
    assert list(merged.models) == ["clinic"] and merged.models["clinic"].adapter is None
    assert not hasattr(merged.model, "peft_config") and not merged.mixed_adapters
    apart = load_catalog([str(run)], merge=False)
    assert [m.adapter for m in apart.models.values()] == [BASE_ADAPTER, "clinic"] and apart.mixed_adapters
    ids = torch.tensor([[5, 17, 42, 8]])
    with torch.no_grad():
        torch.testing.assert_close(merged.model(ids).logits,
                                   apart.model(ids, adapter_names=["clinic"]).logits, atol=1e-5, rtol=1e-4)


def test_every_served_model_stops_at_the_end_of_turn(run, tiny_tokenizer):
    catalog = load_catalog([str(run)], merge=False)
    end = tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert all(end in m.stop_ids for m in catalog.models.values())


def test_serving_an_adapter_under_its_own_base_name_is_refused(run):
    with pytest.raises(ModelError, match="named like its base"):
        load_catalog([str(run)], base=str(run), merge=False)


def test_the_merged_directory_is_what_vllm_and_tgi_read(run, tmp_path, tiny_tokenizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    out = tmp_path / "clinic-merged"
    assert main(["merge", str(run), "--out", str(out)]) == 0
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json"):
        assert (out / name).is_file(), name
    tokenizer = AutoTokenizer.from_pretrained(str(out))   # plain transformers, no seektune
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    eos = GenerationConfig.from_pretrained(str(out)).eos_token_id
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in eos and tiny_tokenizer.unk_token_id in eos
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert model.generation_config.eos_token_id == eos
