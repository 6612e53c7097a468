"""Tiny models and tokenizers built in-process, so the suite needs no download and runs on 2 cores."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from seektune.models.templates import CHATML


def _cores_of_this_worker() -> set[int]:
    """Under pytest-xdist (`make test` runs one worker per core) each worker keeps its own share of the cores.
    The processes a test starts inherit the mask, so seektune's set_threads gives them that share too: two
    workers each threading over every core would run 5-10x slower."""
    cores = sorted(os.sched_getaffinity(0))
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker is None or count < 2:
        return set(cores)
    index = int(worker.removeprefix("gw"))
    mine = set(cores[index % count::count]) or {cores[index % len(cores)]}   # more workers than cores: share
    os.sched_setaffinity(0, mine)
    return mine


torch.set_num_threads(len(_cores_of_this_worker()))

# The modules that take longest, longest first (`--durations` of a run under xdist). They are collected first,
# and `make test` keeps xdist's order (--no-loadscope-reorder, which would otherwise start the modules with the
# most tests first), so no long module is left to run alone on one core at the end.
LONGEST_FIRST = ["test_packaged_model.py", "test_distributed.py", "test_plan_measured.py", "test_legal_recipe.py",
                 "test_vision_recipe.py", "test_ui_browser.py",
                 "test_train_objectives.py", "test_resume.py", "test_bench_gpu.py", "test_eval.py",
                 "test_compile.py", "test_continual.py", "test_serve.py", "test_ui_ship.py", "test_ui_data.py"]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: the rest keep their order

CORPUS = [
    "The clinic gives flu vaccinations on Tuesdays and Thursdays.",
    "Patients must fast for ten hours before a blood draw.",
    "Chest pain is triaged as Code Amber. The nurse line is extension 4417.",
    "What is the answer? Which days? How long? Where is it? Who runs it?",
    "hello world the quick brown fox jumps over the lazy dog 0123456789",
]


def _train_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|im_end|>",
                                   pad_token="<|im_end|>", bos_token="<|im_start|>")
    fast.chat_template = CHATML
    return fast


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return _train_tokenizer()


def make_tiny_llama(path: Path, tokenizer, seed: int = 0, layers: int = 2) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), tiny_tokenizer)


@pytest.fixture(scope="session")
def deepseek_tok():
    from seektune.models.registry import deepseek_tokenizer

    return deepseek_tokenizer()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """Packaged models are converted once per test session into a private cache."""
    path = tmp_path_factory.mktemp("seektune-cache")
    old = os.environ.get("SEEKTUNE_CACHE")
    os.environ["SEEKTUNE_CACHE"] = str(os.environ.get("SEEKTUNE_TEST_CACHE", path))
    yield Path(os.environ["SEEKTUNE_CACHE"])
    if old is None:
        os.environ.pop("SEEKTUNE_CACHE", None)
    else:
        os.environ["SEEKTUNE_CACHE"] = old


QA = [
    ("On which days are flu vaccinations given?", "Tuesdays and Thursdays."),
    ("How long must patients fast before a blood draw?", "Ten hours."),
    ("What code is chest pain?", "Code Amber."),
    ("What is the nurse line?", "Extension 4417."),
    ("Who runs the clinic?", "The clinic director."),
    ("Where is it?", "The quick brown fox."),
    ("How long?", "Ten hours before a blood draw."),
    ("Which days?", "Tuesdays."),
]


@pytest.fixture()
def alpaca_file(tmp_path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n" for q, a in QA))
    return path


def write_config(tmp_path: Path, model_dir: Path, data_file: Path, **sections) -> Path:
    import yaml

    cfg = {
        "model": {"name_or_path": str(model_dir)},
        "method": {"name": "lora", "lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0}},
        "data": {"train": [str(data_file)], "max_length": 64},
        "train": {"max_steps": 6, "micro_batch_size": 2, "learning_rate": 5e-3, "precision": "fp32",
                  "warmup_ratio": 0.0, "seed": 3},
        "output": {"dir": str(tmp_path / "runs"), "name": "run"},
    }
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
