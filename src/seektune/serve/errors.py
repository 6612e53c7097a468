"""Errors the server answers with an OpenAI-shaped body ({"error": {message, type, param, code}})."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from seektune.serve.schemas import error_body


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(error_body(self.message, self.kind, self.param, self.code), status_code=self.status,
                            headers=self.headers)

    def body(self) -> dict:
        return error_body(self.message, self.kind, self.param, self.code)
