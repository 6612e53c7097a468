"""Who may call the server and how often: API keys (from a file or the environment, compared in constant time,
never logged: a key is known in logs and metrics by its label `key-N`) and a per-key token-bucket rate limit."""

from __future__ import annotations

import hmac
import os
import threading
import time
from pathlib import Path

from seektune.errors import ConfigError

KEYS_ENV = "SEEKTUNE_API_KEYS"   # comma-separated keys, for containers that pass secrets as environment


class ApiKeys:
    def __init__(self, keys: list[str]):
        self._keys = [k.encode() for k in keys]

    @classmethod
    def load(cls, key_file: str | None) -> "ApiKeys":
        """Keys from `key_file` (one per line; blank lines and # comments skipped) plus $SEEKTUNE_API_KEYS."""
        keys = [k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()]
        if key_file:
            path = Path(key_file)
            if not path.is_file():
                raise ConfigError(f"--api-key-file {path}: no such file")
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                if len(line) < 16 or any(c.isspace() for c in line):
                    raise ConfigError(f"{path}:{number}: an API key must be at least 16 characters without spaces")
                keys.append(line)
            if not keys:
                raise ConfigError(f"--api-key-file {path} holds no keys")
        return cls(keys)

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def label(self, authorization: str | None) -> str | None:
        """`key-N` for a valid `Bearer <key>` header, else None. Every key is compared, in constant time, so the
        time taken says nothing about which key or how much of it matched."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        given = authorization[len("Bearer "):].strip().encode()
        found = None
        for number, key in enumerate(self._keys, 1):
            if hmac.compare_digest(given, key):
                found = f"key-{number}"
        return found


class RateLimiter:
    """At most `per_minute` requests per key, refilled continuously (a token bucket with a burst of `per_minute`)."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, who: str) -> float:
        """0 when the request may go ahead (and is counted), else seconds until it may."""
        if self.per_minute <= 0:
            return 0.0
        rate = self.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(who, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - stamp) * rate)
            if tokens >= 1.0:
                self._buckets[who] = (tokens - 1.0, now)
                return 0.0
            self._buckets[who] = (tokens, now)
            return (1.0 - tokens) / rate
