"""Request and response bodies of the OpenAI API routes we serve (chat completions, completions, models), as
strict pydantic models: an unknown or unsupported parameter is a 400 that names it, not silently ignored."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from seektune.data.formats import content_text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageURL(_Strict):
    url: str
    detail: Literal["auto", "low", "high"] | None = None   # accepted; the processor decides the resolution


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[Annotated[TextPart | ImagePart, Field(discriminator="type")]] | None = None
    name: str | None = None
    reasoning_content: str | None = None   # DeepSeek's field on earlier assistant turns; templates drop it

    @model_validator(mode="after")
    def _images_from_the_user(self):
        if self.role != "user" and self.image_urls():
            raise ValueError("image_url parts go in user messages (the model reads images, it does not write them)")
        return self

    def as_template_message(self) -> dict:
        """The message as training data writes it: image parts become `<image>` placeholders in the text."""
        content = self.content if isinstance(self.content, str) else \
            content_text([p.model_dump() for p in self.content or []], "content")
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": content}

    def image_urls(self) -> list[str]:
        """The message's images, in order."""
        return [] if isinstance(self.content, str) else \
            [p.image_url.url for p in self.content or [] if isinstance(p, ImagePart)]


class StreamOptions(_Strict):
    include_usage: bool = False


class SamplingRequest(_Strict):
    """Parameters both routes share. Those we accept only at their neutral value are listed so that clients that
    always send them (at the default) still work."""

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    user: str | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None
    max_reasoning_tokens: int | None = Field(
        None, ge=0, description="seektune extension for R1-style models: tokens the reasoning may use before "
        "</think> is written for the model (the answer's tokens count against max_tokens as usual)")

    @field_validator("stop")
    @classmethod
    def _stops(cls, value):
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences")
        return stops

    @model_validator(mode="after")
    def _neutral_only(self):
        if self.n != 1:
            raise ValueError("n: only n=1 is supported (send several requests; they are batched together)")
        if self.presence_penalty or self.frequency_penalty or self.logit_bias:
            raise ValueError("presence_penalty, frequency_penalty and logit_bias are not supported")
        return self

    @property
    def stops(self) -> list[str]:
        return list(self.stop or [])


class ChatCompletionRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: Literal[False] = False
    response_format: dict | None = None
    tools: list | None = None
    tool_choice: str | dict | None = None
    parallel_tool_calls: bool | None = None

    @model_validator(mode="after")
    def _supported(self):
        if self.tools:
            raise ValueError("tools: tool calling is not supported by this server")
        if self.response_format and self.response_format.get("type") != "text":
            raise ValueError("response_format: only {'type': 'text'} is supported")
        return self

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(SamplingRequest):
    prompt: str | list[str] | list[int]
    max_tokens: int | None = Field(16, ge=1)   # the OpenAI default for this route
    echo: Literal[False] = False
    logprobs: None = None
    best_of: Literal[1] = 1
    suffix: None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value):
        if isinstance(value, list) and value and isinstance(value[0], str):
            if len(value) != 1:
                raise ValueError("one prompt per request (send several requests; they are batched together)")
            return value[0]
        return value

    @property
    def token_limit(self) -> int | None:
        return self.max_tokens


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_response(rid: str, model: str, content: str, reasoning: str | None, finish: str, use: dict) -> dict:
    message = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}], "usage": use}


def chat_chunk(rid: str, model: str, delta: dict, finish: str | None = None) -> dict:
    return {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}


def completion_response(rid: str, model: str, text: str, finish: str, use: dict) -> dict:
    return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}], "usage": use}


def completion_chunk(rid: str, model: str, text: str, finish: str | None = None) -> dict:
    return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}]}


def usage_chunk(rid: str, model: str, obj: str, use: dict) -> dict:
    return {"id": rid, "object": obj, "created": int(time.time()), "model": model, "choices": [], "usage": use}


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
