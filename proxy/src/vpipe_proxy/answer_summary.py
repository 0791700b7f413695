"""What shadow mode compares of an answer, whole or streamed: pure, sans-IO.

`answer_of` reads a whole reply's JSON; `StreamSummary` is fed a stream's SSE bytes (any split)
and reassembles the same `Answer`, so a streamed V1 and a streamed V2 compare exactly like two
whole replies. Tool-call arguments are kept as canonical JSON (keys sorted, whitespace gone) so
that the same call streamed in different fragments, or sent by a provider of another protocol,
compares equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from vpipe_proxy.sse import SSEDecoder

ToolCall = tuple[str, str]  # (name, arguments as canonical JSON)
_RESPONSE_ENDS = ("response.completed", "response.incomplete")


@dataclass(frozen=True, slots=True)
class Answer:
    """The comparable content of one successful answer."""

    text: str = ""
    finish: str | None = None
    tools: tuple[ToolCall, ...] = ()
    output_tokens: int | None = None


def tool_call(name: Any, arguments: Any) -> ToolCall:
    """(name, canonical arguments): a JSON string or an object (Anthropic's `input`)."""
    name = str(name or "")
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return name, "{}"  # none, "" and {} all mean "no arguments" across providers
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return name, arguments  # not JSON: compared as sent
    try:
        return name, orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return name, str(arguments)


def answer_of(protocol: str, data: dict[str, Any]) -> Answer:
    """The comparable content of a whole (non-streamed) reply in `protocol`."""
    usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else {}
    if protocol == "openai-responses":
        items = [i for i in data.get("output") or [] if isinstance(i, dict)]
        return Answer(
            text="".join(str(part.get("text", "")) for item in items
                         if item.get("type") == "message"
                         for part in item.get("content") or []
                         if isinstance(part, dict) and part.get("type") == "output_text"),
            finish=data.get("status"),
            tools=tuple(tool_call(i.get("name"), i.get("arguments")) for i in items
                        if i.get("type") == "function_call"),
            output_tokens=usage.get("output_tokens"))
    if protocol == "anthropic-messages":
        blocks = [b for b in data.get("content") or [] if isinstance(b, dict)]
        return Answer(
            text="".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text"),
            finish=data.get("stop_reason"),
            tools=tuple(tool_call(b.get("name"), b.get("input")) for b in blocks
                        if b.get("type") == "tool_use"),
            output_tokens=usage.get("output_tokens"))
    choices = data.get("choices") or [{}]
    message = choices[0].get("message") or {}
    return Answer(
        text=message.get("content") or "",
        finish=choices[0].get("finish_reason"),
        tools=tuple(tool_call((c.get("function") or {}).get("name"),
                              (c.get("function") or {}).get("arguments"))
                    for c in message.get("tool_calls") or [] if isinstance(c, dict)),
        output_tokens=usage.get("completion_tokens"))


class StreamSummary:
    """Feed one stream's bytes in order; `result()` is its `Answer`, or None if it failed.

    A stream failed when it carries an in-band error event (or Responses' `response.failed`),
    or, for Responses, when it ends without its final event. One per stream, never shared.
    """

    def __init__(self, protocol: str) -> None:
        self._protocol = protocol
        self._decoder = SSEDecoder()
        self._failed = False
        self._text: list[str] = []
        self._tools: dict[int, list[str]] = {}  # index -> [name, argument fragments...]
        self._inputs: dict[int, Any] = {}  # Anthropic: a tool block's `input` at its start
        self._finish: str | None = None
        self._tokens: int | None = None
        self._final: dict[str, Any] | None = None  # Responses: the response its end carries

    def feed(self, chunk: bytes) -> None:
        if self._failed:
            return
        for event in self._decoder.feed(chunk):
            self._event(event.event, event.data)

    def result(self) -> Answer | None:
        for event in self._decoder.flush():
            self._event(event.event, event.data)
        if self._failed:
            return None
        if self._protocol == "openai-responses":
            return None if self._final is None else answer_of(self._protocol, self._final)
        tools = tuple(tool_call(parts[0], "".join(parts[1:]) or self._inputs.get(index))
                      for index, parts in sorted(self._tools.items()))
        return Answer("".join(self._text), self._finish, tools, self._tokens)

    def _event(self, kind: str | None, payload: str) -> None:
        if self._failed or payload == "[DONE]":
            return
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return  # not ours to judge: the client got it as it was
        if not isinstance(data, dict):
            return
        if kind == "error" or data.get("error") or data.get("type") in ("error",
                                                                        "response.failed"):
            self._failed = True
        elif self._protocol == "openai-responses":
            if data.get("type") in _RESPONSE_ENDS and isinstance(data.get("response"), dict):
                self._final = data["response"]
        elif self._protocol == "anthropic-messages":
            self._anthropic(data)
        else:
            self._chat(data)

    def _chat(self, data: dict[str, Any]) -> None:
        for choice in data.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # the whole-reply summary reads choice 0 only
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                self._text.append(delta["content"])
            for call in delta.get("tool_calls") or []:
                function = call.get("function") or {}
                index = call.get("index", 0)
                parts = self._tools.setdefault(index if isinstance(index, int) else 0, [""])
                if function.get("name"):
                    parts[0] = function["name"]
                if isinstance(function.get("arguments"), str):
                    parts.append(function["arguments"])
            self._finish = choice.get("finish_reason") or self._finish
        usage = data.get("usage")
        if isinstance(usage, dict):
            self._tokens = usage.get("completion_tokens", self._tokens)

    def _anthropic(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                # `input` is {} here and the arguments follow as input_json_delta fragments;
                # it stands only for a block that sends none.
                index = data.get("index")
                index = index if isinstance(index, int) else len(self._tools)
                self._tools[index] = [block.get("name", "")]
                self._inputs[index] = block.get("input")
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                self._text.append(delta.get("text", ""))
            elif delta.get("type") == "input_json_delta":
                parts = self._tools.get(data.get("index", -1))
                if parts is not None:
                    parts.append(delta.get("partial_json", ""))
        elif kind == "message_delta":
            self._finish = (data.get("delta") or {}).get("stop_reason") or self._finish
            usage = data.get("usage")
            if isinstance(usage, dict):
                self._tokens = usage.get("output_tokens", self._tokens)
