"""Launches and configs that would silently train unsharded are refused with the command that shards."""

from types import SimpleNamespace

import pytest
from accelerate.utils import DistributedType

from seektune import config
from seektune.errors import ConfigError
from seektune.train import sharding


def _cfg(tmp_path, extra=""):
    p = tmp_path / "c.yaml"
    p.write_text("data: {train: a.jsonl}\n" + extra)
    return config.load(p)


def _accelerator(kind=DistributedType.NO, processes=1):
    return SimpleNamespace(distributed_type=kind, num_processes=processes)


@pytest.fixture(autouse=True)
def _clean_launch_env(monkeypatch):
    for name in ("WORLD_SIZE", "ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("env, kind, processes, message", [
    ({"WORLD_SIZE": "2"}, DistributedType.NO, 1, r"started 2 processes but accelerate sees one"),
    ({"ACCELERATE_USE_FSDP": "true"}, DistributedType.MULTI_CPU, 2, r"FSDP config.*every process would hold"),
    ({"ACCELERATE_USE_DEEPSPEED": "true"}, DistributedType.NO, 1, r"DeepSpeed config.*sharding=fsdp2"),
])
def test_a_sharded_launch_that_would_run_unsharded_is_refused(tmp_path, monkeypatch, env, kind, processes, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message) as raised:
        sharding.check_launch(_cfg(tmp_path), _accelerator(kind, processes))
    assert "torchrun --nproc-per-node N" in str(raised.value)


@pytest.mark.parametrize("kind, processes, message", [
    (DistributedType.NO, 1, r"this is one process"),
    (DistributedType.FSDP, 2, r"accelerate's FSDP config both shard"),
    (DistributedType.DEEPSPEED, 2, r"accelerate's DEEPSPEED config both shard"),
])
def test_fsdp2_needs_several_plain_processes(tmp_path, kind, processes, message):
    with pytest.raises(ConfigError, match=message):
        sharding.check_launch(_cfg(tmp_path, "train: {sharding: fsdp2}\n"), _accelerator(kind, processes))


def test_plain_and_correct_launches_pass(tmp_path, monkeypatch):
    sharding.check_launch(_cfg(tmp_path), _accelerator())
    monkeypatch.setenv("WORLD_SIZE", "2")
    sharding.check_launch(_cfg(tmp_path), _accelerator(DistributedType.MULTI_CPU, 2))
    sharding.check_launch(_cfg(tmp_path, "train: {sharding: fsdp2}\n"), _accelerator(DistributedType.MULTI_CPU, 2))
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    sharding.check_launch(_cfg(tmp_path), _accelerator(DistributedType.FSDP, 2))


@pytest.mark.parametrize("text, message", [
    ("method: {name: qlora}", r"fsdp2 shards methods full, freeze, lora, ia3; method qlora"),
    ("method: {name: prompt}\ndata: {train: a.jsonl, packing: false}", r"method prompt"),
    ("objective: {name: dpo}", r"objective dpo runs a second model"),
    ("continual: {previous: [r], ewc: {}}", r"does not combine with continual"),
    ("train: {sharding: zero3}", r"train\.sharding"),
])
def test_configs_fsdp2_cannot_shard_are_refused(tmp_path, text, message):
    extra = text if text.startswith("train:") else "train: {sharding: fsdp2}\n" + text
    p = tmp_path / "c.yaml"
    body = extra if "data:" in extra else "data: {train: a.jsonl}\n" + extra
    p.write_text(body + "\n")
    with pytest.raises(ConfigError, match=message):
        config.load(p)
