"""A model named by a path that is not there is a clear error naming it (not the hub client's complaint about an
invalid repo id): the common case is an adapter whose base was moved after training."""

import pytest

from seektune.errors import ModelError
from seektune.models.loading import resolve


def test_a_missing_model_directory_is_named(tmp_path):
    missing = tmp_path / "moved-base"
    with pytest.raises(ModelError, match=f"model directory not found: {missing}"):
        resolve(str(missing))
    with pytest.raises(ModelError, match="not found"):
        resolve("./no-such-model")
    assert resolve("org/some-model") == "org/some-model"   # a hub id still goes to the hub cache


def test_a_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        resolve(str(tmp_path))
