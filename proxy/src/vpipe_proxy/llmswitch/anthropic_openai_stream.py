"""OpenAI chat.completion.chunk stream -> Anthropic Messages stream events, event by event.

Sans-IO and per stream: feed the provider's SSE bytes, get the client's SSE bytes back as soon
as each chunk is understood. Tool-call argument fragments are forwarded as `input_json_delta`s
in order, so the client reassembles exactly the arguments the provider streamed.
"""

from __future__ import annotations

from typing import Any

import orjson

from vpipe_proxy.llmswitch.anthropic_openai import FINISH_TO_STOP, usage_to_anthropic
from vpipe_proxy.llmswitch.stream_common import StreamConverter


def sse_event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class OpenAIToAnthropicStream(StreamConverter):
    """One stream's conversion state."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self._model = model
        self._started = False
        self._block: str | None = None  # kind of the open content block
        self._index = -1  # index of the open content block
        self._tools: dict[int, int] = {}  # OpenAI tool_call index -> Anthropic block index
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None

    def _on_event(self, kind: str | None, data: dict[str, Any]) -> bytes:
        return self._chunk(data)

    def _on_done(self) -> bytes:
        return self._close()

    def _ended_early(self) -> bytes:
        if self._finish is None:  # no finish_reason: the answer was cut short
            return super()._ended_early()
        return self._close()

    def _start(self, data: dict[str, Any]) -> bytes:
        self._started = True
        message: dict[str, Any] = {
            "id": "msg_" + str(data.get("id", "")).removeprefix("chatcmpl-"),
            "type": "message", "role": "assistant", "model": data.get("model") or self._model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return sse_event("message_start", {"type": "message_start", "message": message})

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._stop_block()
        self._index += 1
        self._block = kind
        return out + sse_event("content_block_start", {"type": "content_block_start",
                                                       "index": self._index,
                                                       "content_block": block})

    def _stop_block(self) -> bytes:
        if self._block is None:
            return b""
        self._block = None
        return sse_event("content_block_stop", {"type": "content_block_stop",
                                                "index": self._index})

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        return sse_event("content_block_delta", {
            "type": "content_block_delta",
            "index": self._index if index is None else index, "delta": delta})

    def _chunk(self, data: dict[str, Any]) -> bytes:
        out = b"" if self._started else self._start(data)
        if data.get("usage"):
            self._usage = data["usage"]
        for choice in data.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                if self._block != "thinking":
                    out += self._open("thinking", {"type": "thinking", "thinking": "",
                                                   "signature": ""})
                out += self._delta({"type": "thinking_delta", "thinking": reasoning})
            if delta.get("content"):
                if self._block != "text":
                    out += self._open("text", {"type": "text", "text": ""})
                out += self._delta({"type": "text_delta", "text": delta["content"]})
            for call in delta.get("tool_calls") or []:
                out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
                out += self._stop_block()
        return out

    def _tool_delta(self, call: dict[str, Any]) -> bytes:
        position = call.get("index", 0)
        function = call.get("function") or {}
        out = b""
        if position not in self._tools:
            out += self._open("tool_use", {"type": "tool_use", "id": call.get("id") or "",
                                           "name": function.get("name") or "", "input": {}})
            self._tools[position] = self._index
        arguments = function.get("arguments")
        if arguments:
            out += self._delta({"type": "input_json_delta", "partial_json": arguments},
                               self._tools[position])
        return out

    def _close(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        out = b"" if self._started else self._start({})
        out += self._stop_block()
        usage = usage_to_anthropic(self._usage)
        out += sse_event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": FINISH_TO_STOP.get(self._finish or "stop", "end_turn"),
                      "stop_sequence": None},
            "usage": usage,
        })
        return out + sse_event("message_stop", {"type": "message_stop"})
