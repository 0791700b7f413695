"""Anthropic Messages stream events -> OpenAI chat.completion.chunk stream, event by event.

Sans-IO and per stream. Each Anthropic tool_use block becomes one OpenAI tool call (numbered in
order), and its `input_json_delta` fragments become argument deltas, unchanged and in order.
"""

from __future__ import annotations

from typing import Any

from vpipe_proxy.llmswitch.openai_anthropic import STOP_TO_FINISH, usage_to_openai
from vpipe_proxy.llmswitch.stream_common import ChatChunkStream


class AnthropicToOpenAIStream(ChatChunkStream):
    """One stream's conversion state."""

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__(model, include_usage)
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_call index
        self._usage: dict[str, Any] = {}
        self._stop: str | None = None

    def _on_event(self, kind: str | None, data: dict[str, Any]) -> bytes:
        kind = data.get("type", kind)
        if kind == "message_start":
            message = data.get("message") or {}
            self._head["id"] = "chatcmpl-" + str(message.get("id", "")).removeprefix("msg_")
            self._head["model"] = message.get("model") or self._head["model"]
            self._usage.update(message.get("usage") or {})
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                position = len(self._tools)
                self._tools[data.get("index", 0)] = position
                return self._chunk({"tool_calls": [{
                    "index": position, "id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""}}]})
            if block.get("type") == "text" and block.get("text"):
                return self._chunk({"content": block["text"]})
            return b""
        if kind == "content_block_delta":
            return self._delta(data.get("index", 0), data.get("delta") or {})
        if kind == "message_delta":
            self._stop = (data.get("delta") or {}).get("stop_reason") or self._stop
            self._usage.update(data.get("usage") or {})
            return b""
        if kind == "message_stop":
            return self._close()
        return b""  # ping, content_block_stop, and events added to the API later

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        kind = delta.get("type")
        if kind == "text_delta":
            return self._chunk({"content": delta.get("text", "")})
        if kind == "thinking_delta":
            return self._chunk({"reasoning_content": delta.get("thinking", "")})
        if kind == "input_json_delta" and index in self._tools:
            return self._chunk({"tool_calls": [{
                "index": self._tools[index],
                "function": {"arguments": delta.get("partial_json", "")}}]})
        return b""  # signature_delta and the like carry nothing OpenAI clients can use

    def _close(self) -> bytes:
        return self._end(STOP_TO_FINISH.get(self._stop or "end_turn", "stop"),
                         usage_to_openai(self._usage))
