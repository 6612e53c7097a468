"""API keys, rate limits and the bind-address rule."""

import pytest

from seektune.errors import ConfigError
from seektune.serve.access import ApiKeys, RateLimiter
from seektune.serve.options import ServeOptions
from seektune.serve.server import check_exposure, is_loopback


def test_keys_come_from_the_file_and_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "keys.txt"
    path.write_text("# ops team\nsk-first-key-000000000\n\n  sk-second-key-00000000  \n")
    monkeypatch.setenv("SEEKTUNE_API_KEYS", "sk-from-env-key-000000, ")
    keys = ApiKeys.load(str(path))
    assert keys.required
    assert keys.label("Bearer sk-from-env-key-000000") == "key-1"
    assert keys.label("Bearer sk-second-key-00000000") == "key-3"
    for wrong in (None, "", "sk-first-key-000000000", "Bearer sk-first-key-00000000", "Bearer ", "Basic x"):
        assert keys.label(wrong) is None


def test_a_bad_key_file_is_named_with_its_line(tmp_path, monkeypatch):
    monkeypatch.delenv("SEEKTUNE_API_KEYS", raising=False)
    path = tmp_path / "keys.txt"
    path.write_text("sk-good-key-0000000000\nshort\n")
    with pytest.raises(ConfigError, match=r"keys.txt:2: an API key must be at least 16"):
        ApiKeys.load(str(path))
    path.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="holds no keys"):
        ApiKeys.load(str(path))
    with pytest.raises(ConfigError, match="no such file"):
        ApiKeys.load(str(tmp_path / "missing.txt"))
    assert not ApiKeys.load(None).required


def test_rate_limit_per_key_refills_over_time(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("seektune.serve.access.time.monotonic", lambda: clock[0])
    limiter = RateLimiter(per_minute=2)
    assert limiter.retry_after("key-1") == 0 and limiter.retry_after("key-1") == 0
    assert limiter.retry_after("key-1") == pytest.approx(30.0)   # one request per 30 s refills
    assert limiter.retry_after("key-2") == 0                     # keys are limited separately
    clock[0] += 30
    assert limiter.retry_after("key-1") == 0
    assert RateLimiter(0).retry_after("key-1") == 0              # 0: no limit


@pytest.mark.parametrize("host, keys, insecure, refused", [
    ("127.0.0.1", [], False, False), ("::1", [], False, False), ("localhost", [], False, False),
    ("0.0.0.0", [], False, True), ("10.1.2.3", [], False, True), ("0.0.0.0", ["sk-key-0000000000000"], False, False),
    ("0.0.0.0", [], True, False),
])
def test_only_loopback_may_go_without_keys(host, keys, insecure, refused):
    opts = ServeOptions(host=host, insecure=insecure)
    assert is_loopback(host) == (host in ("127.0.0.1", "::1", "localhost"))
    if refused:
        with pytest.raises(ConfigError, match="without API keys"):
            check_exposure(opts, ApiKeys(keys))
    else:
        check_exposure(opts, ApiKeys(keys))


def test_options_are_checked_by_name():
    with pytest.raises(Exception, match="max_batch"):
        ServeOptions(max_batch=0)
