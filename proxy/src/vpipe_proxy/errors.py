"""The proxy's exception hierarchy.

`ProxyError` carries the HTTP status and an error code, and renders itself in the caller's
protocol, so every failure a client sees is a well-formed API error and never a traceback.
Messages name the route, pipeline or module at fault and say what to do.
"""

from __future__ import annotations

from typing import Any

import orjson


class VpipeProxyError(Exception):
    """Root of every error raised by `vpipe_proxy`."""


class ConfigLoadError(VpipeProxyError):
    """A config could not be turned into a runtime (bad document, missing secret, ...)."""


# OpenAI's error `type` by status, as its SDK and clients expect to see them.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "internal_error",
    502: "upstream_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}


class ProxyError(VpipeProxyError):
    """An error answered to the client with `status`, a stable `code` and a helpful message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}

    def openai_body(self) -> bytes:
        error: dict[str, Any] = {
            "message": self.message,
            "type": _OPENAI_TYPES.get(self.status, "api_error"),
            "param": self.param,
            "code": self.code,
        }
        return orjson.dumps({"error": error})


# Anthropic's error `type` by status.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def anthropic_body(error: ProxyError) -> bytes:
    """The error as an Anthropic Messages API error object."""
    kind = _ANTHROPIC_TYPES.get(error.status, "invalid_request_error" if error.status < 500
                                else "api_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": error.message}})


def bad_request(message: str, *, param: str | None = None, code: str = "invalid_request") -> ProxyError:
    return ProxyError(400, code, message, param=param)


def internal_error(error: BaseException) -> ProxyError:
    """What the client sees for a bug: the exception's type, never its text or a traceback."""
    return ProxyError(500, "internal_error",
                      f"The proxy failed on this request ({type(error).__name__}); it is logged "
                      "on the proxy. Retrying will not help until it is fixed; please report it.")
