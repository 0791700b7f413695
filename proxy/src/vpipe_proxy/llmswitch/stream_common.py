"""What every stream converter shares: SSE decoding, event parsing, failure and end handling.

A converter subclasses `StreamConverter` and turns one parsed provider event into client bytes;
the base feeds it, stops after the stream is done, and turns provider error events, non-JSON
events and streams cut short into ProxyErrors (502) that the front end reports in-band.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from vpipe_proxy.errors import ProxyError
from vpipe_proxy.sse import Event, SSEDecoder


def parse_event(payload: str) -> dict[str, Any]:
    """A provider event as a JSON object; error events of any of the three protocols raise."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise ProxyError(502, "upstream_protocol_error",
                         f"the provider streamed an event that is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise ProxyError(502, "upstream_protocol_error",
                         "the provider streamed an event that is not a JSON object")
    kind = data.get("type")
    if data.get("error") or kind in ("error", "response.failed"):
        error = data.get("error") or (data.get("response") or {}).get("error") or data
        message = error.get("message", error) if isinstance(error, dict) else error
        raise ProxyError(502, "upstream_error", f"the provider failed mid-stream: {message}")
    return data


class StreamConverter:
    """Base of the per-stream converters: feed provider bytes, get client bytes."""

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self._done = False

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(self._one(e) for e in self._decoder.feed(chunk))

    def finish(self) -> bytes:
        """Call when the provider's stream ends; a stream cut short is an error."""
        out = b"".join(self._one(e) for e in self._decoder.flush())
        return out if self._done else out + self._ended_early()

    def _one(self, event: Event) -> bytes:
        if self._done:
            return b""
        if event.data == "[DONE]":
            return self._on_done()
        return self._on_event(event.event, parse_event(event.data))

    def _on_event(self, kind: str | None, data: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def _on_done(self) -> bytes:
        """The OpenAI Chat `[DONE]` sentinel; other protocols never send it."""
        return b""

    def _ended_early(self) -> bytes:
        raise ProxyError(502, "upstream_protocol_error",
                         "the provider's stream ended before it finished the answer")


class ChatChunkStream(StreamConverter):
    """Base of the converters that emit OpenAI chat.completion.chunk events."""

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__()
        self._include_usage = include_usage
        self._head: dict[str, Any] = {"id": "chatcmpl-", "object": "chat.completion.chunk",
                                      "created": int(time.time()), "model": model}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {**self._head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                           "logprobs": None}]}
        return b"data: " + orjson.dumps(data) + b"\n\n"

    def _end(self, finish: str, usage: dict[str, Any]) -> bytes:
        """The finish chunk, the usage chunk when the client asked for it, and [DONE]."""
        self._done = True
        out = self._chunk({}, finish)
        if self._include_usage:
            out += b"data: " + orjson.dumps({**self._head, "choices": [], "usage": usage}) + \
                b"\n\n"
        return out + b"data: [DONE]\n\n"
