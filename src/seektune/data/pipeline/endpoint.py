"""A minimal client for any OpenAI-compatible chat endpoint (OpenAI, DeepSeek, vLLM, seektune serve, ...)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import httpx

from seektune.errors import ConfigError, SeektuneError


class EndpointError(SeektuneError):
    pass


@dataclass
class Endpoint:
    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.7
    max_tokens: int = 1024
    timeout_s: float = 120.0
    retries: int = 3

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"endpoint base_url must start with http:// or https://, got {self.base_url!r}")
        self._client = httpx.Client(timeout=self.timeout_s)

    @property
    def describe(self) -> dict:
        """What goes into manifests: where and which model, never the key."""
        return {"base_url": self.base_url, "model": self.model, "temperature": self.temperature}

    def chat(self, messages: list[dict], temperature: float | None = None) -> str:
        url = self.base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(self.api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        body = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                "temperature": self.temperature if temperature is None else temperature}
        last = ""
        for attempt in range(self.retries + 1):
            try:
                response = self._client.post(url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()["choices"][0]["message"]["content"] or ""
                    except (KeyError, IndexError, TypeError, json.JSONDecodeError):
                        raise EndpointError(f"{url}: not an OpenAI chat completion response: "
                                            f"{response.text[:200]}") from None
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code in (400, 401, 403, 404):
                    hint = f" (is ${self.api_key_env} set?)" if response.status_code in (401, 403) else ""
                    raise EndpointError(f"{url}: {last}{hint}")
            if attempt < self.retries:
                time.sleep(min(2 ** attempt, 30))
        raise EndpointError(f"{url}: failed after {self.retries + 1} attempts; last error {last}")
