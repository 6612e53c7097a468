"""When a training process re-executes itself on tcmalloc, and how a run records the allocator it ran on."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seektune import allocator
from seektune.errors import ConfigError

LIB = Path("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4")


@pytest.mark.parametrize("env, library, gpu, expected", [
    ({}, LIB, False, LIB),                                          # the default on a CPU machine with it
    ({"SEEKTUNE_ALLOCATOR": "auto"}, LIB, False, LIB),
    ({"SEEKTUNE_ALLOCATOR": "system"}, LIB, False, None),           # opted out
    ({"LD_PRELOAD": "/opt/libjemalloc.so.2"}, LIB, False, None),    # the user chose; or already re-executed
    ({}, LIB, True, None),                                          # a GPU machine: not measured there
    ({}, None, False, None),                                        # not installed
])
def test_tcmalloc_is_preloaded_only_where_it_was_measured_and_not_chosen_otherwise(env, library, gpu, expected):
    assert allocator.preload_for(env, library, gpu) == expected


def test_an_unknown_allocator_setting_names_the_variable():
    with pytest.raises(ConfigError, match=r"SEEKTUNE_ALLOCATOR='tcmalloc'.*auto.*system"):
        allocator.preload_for({"SEEKTUNE_ALLOCATOR": "tcmalloc"}, LIB, False)


def test_the_minimal_tcmalloc_is_found_first_and_a_missing_one_is_none(tmp_path):
    one, two = tmp_path / "a", tmp_path / "b"
    one.mkdir(), two.mkdir()
    assert allocator.find_tcmalloc((str(one), str(two))) is None
    (one / "libtcmalloc.so.4").write_bytes(b"")
    (two / "libtcmalloc_minimal.so.4").write_bytes(b"")
    assert allocator.find_tcmalloc((str(one), str(two))) == two / "libtcmalloc_minimal.so.4"


def test_the_active_allocator_is_read_from_the_process_maps(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n")
    assert allocator.active(maps) == "glibc"
    maps.write_text(maps.read_text() + "7f02-7f03 r-xp 0 08:01 2 /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4\n")
    assert allocator.active(maps) == "tcmalloc"
    assert allocator.active(tmp_path / "missing") == "unknown"
    assert allocator.active() == "glibc"   # this test process: pytest is not re-executed


@pytest.mark.skipif(allocator.find_tcmalloc() is None or allocator.has_gpu_driver(),
                    reason="libtcmalloc-minimal4 is not installed (apt install libtcmalloc-minimal4)")
def test_seektune_train_reexecutes_on_tcmalloc_and_records_it(tmp_path, tiny_llama_dir, alpaca_file):
    from tests.conftest import write_config

    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "SEEKTUNE_ALLOCATOR")}
    results = {}
    for choice in ("auto", "system"):
        cfg = write_config(tmp_path / choice, tiny_llama_dir, alpaca_file, train={"max_steps": 2})
        done = subprocess.run([sys.executable, "-m", "seektune.cli", "train", str(cfg)], capture_output=True,
                              text=True, timeout=300, env={**env, "SEEKTUNE_ALLOCATOR": choice,
                                                           "PYTHONPATH": os.pathsep.join(sys.path)})
        assert done.returncode == 0, done.stderr[-3000:]
        results[choice] = json.loads((tmp_path / choice / "runs/run/result.json").read_text())["allocator"]
        assert f"allocator: {results[choice]}" in done.stdout
    assert results == {"auto": "tcmalloc", "system": "glibc"}
