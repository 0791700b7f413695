"""OpenAI chat.completion.chunk stream -> OpenAI Responses stream events, event by event.

Sans-IO and per stream. Output items (reasoning, message, function calls) open when their first
delta arrives and close, with their `.done` events, when another item starts or the answer
ends; `response.completed` (or `response.incomplete`) carries the whole Response at the end.
"""

from __future__ import annotations

from typing import Any

import orjson

from vpipe_proxy.llmswitch.responses_openai import (
    envelope,
    response_id,
    status_of,
    usage_to_responses,
)
from vpipe_proxy.llmswitch.stream_common import StreamConverter


class ChatToResponsesStream(StreamConverter):
    """One stream's conversion state."""

    def __init__(self, request: dict[str, Any]) -> None:
        super().__init__()
        self._request = request
        self._seq = 0
        self._response: dict[str, Any] | None = None
        self._items: list[dict[str, Any]] = []
        self._open: int | None = None  # output index of the item receiving deltas
        self._tools: dict[int, int] = {}  # chat tool_call index -> output index
        self._finish: str | None = None
        self._usage: Any = None

    def _on_done(self) -> bytes:
        return self._complete()

    def _ended_early(self) -> bytes:
        if self._finish is None:
            return super()._ended_early()
        return self._complete()

    def _emit(self, kind: str, **data: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._seq, **data}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _on_event(self, kind: str | None, data: dict[str, Any]) -> bytes:
        out = self._start(data) if self._response is None else b""
        if data.get("usage"):
            self._usage = data["usage"]
        for choice in data.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                out += self._text("reasoning", reasoning)
            if delta.get("content"):
                out += self._text("message", delta["content"])
            for call in delta.get("tool_calls") or ():
                out += self._tool(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
                out += self._close_open()
        return out

    def _start(self, data: dict[str, Any]) -> bytes:
        rid = response_id(str(data.get("id", "")))
        self._response = envelope(rid, data.get("model") or self._request["model"],
                                  self._request, "in_progress")
        return (self._emit("response.created", response=self._response)
                + self._emit("response.in_progress", response=self._response))

    def _open_item(self, item: dict[str, Any]) -> bytes:
        out = self._close_open()
        self._items.append(item)
        self._open = len(self._items) - 1
        return out + self._emit("response.output_item.added", output_index=self._open, item=item)

    def _text(self, kind: str, text: str) -> bytes:
        assert self._response is not None
        out = b""
        if self._open is None or self._items[self._open]["type"] != kind:
            base = self._response["id"][5:]
            if kind == "message":
                out += self._open_item({"type": "message", "id": f"msg_{base}_{len(self._items)}",
                                        "status": "in_progress", "role": "assistant",
                                        "content": []})
                out += self._emit("response.content_part.added", item_id=self._items[-1]["id"],
                                  output_index=self._open, content_index=0,
                                  part={"type": "output_text", "text": "", "annotations": []})
            else:
                out += self._open_item({"type": "reasoning", "id": f"rs_{base}_{len(self._items)}",
                                        "summary": []})
                out += self._emit("response.reasoning_summary_part.added",
                                  item_id=self._items[-1]["id"], output_index=self._open,
                                  summary_index=0, part={"type": "summary_text", "text": ""})
        item = self._items[self._open]  # type: ignore[index]
        item["_text"] = item.get("_text", "") + text
        if kind == "message":
            return out + self._emit("response.output_text.delta", item_id=item["id"],
                                    output_index=self._open, content_index=0, delta=text)
        return out + self._emit("response.reasoning_summary_text.delta", item_id=item["id"],
                                output_index=self._open, summary_index=0, delta=text)

    def _tool(self, call: dict[str, Any]) -> bytes:
        assert self._response is not None
        position = call.get("index", 0)
        function = call.get("function") or {}
        out = b""
        if position not in self._tools:
            out += self._open_item({
                "type": "function_call", "id": f"fc_{self._response['id'][5:]}_{len(self._items)}",
                "call_id": call.get("id") or "", "name": function.get("name") or "",
                "arguments": "", "status": "in_progress"})
            self._tools[position] = self._open  # type: ignore[assignment]
        index = self._tools[position]
        arguments = function.get("arguments")
        if arguments:
            self._items[index]["arguments"] += arguments
            out += self._emit("response.function_call_arguments.delta",
                              item_id=self._items[index]["id"], output_index=index,
                              delta=arguments)
        return out

    def _close_open(self) -> bytes:
        if self._open is None:
            return b""
        index, self._open = self._open, None
        item = self._items[index]
        text = item.pop("_text", "")
        if item["type"] == "message":
            part = {"type": "output_text", "text": text, "annotations": []}
            item.update(status="completed", content=[part])
            out = self._emit("response.output_text.done", item_id=item["id"], output_index=index,
                             content_index=0, text=text)
            out += self._emit("response.content_part.done", item_id=item["id"],
                              output_index=index, content_index=0, part=part)
        elif item["type"] == "reasoning":
            part = {"type": "summary_text", "text": text}
            item["summary"] = [part]
            out = self._emit("response.reasoning_summary_text.done", item_id=item["id"],
                             output_index=index, summary_index=0, text=text)
            out += self._emit("response.reasoning_summary_part.done", item_id=item["id"],
                              output_index=index, summary_index=0, part=part)
        else:
            item["status"] = "completed"
            out = self._emit("response.function_call_arguments.done", item_id=item["id"],
                             output_index=index, arguments=item["arguments"])
        return out + self._emit("response.output_item.done", output_index=index, item=item)

    def _complete(self) -> bytes:
        self._done = True
        out = b"" if self._response is not None else self._start({})
        out += self._close_open()
        # Function calls left open by an interleaved stream are closed here too.
        for index, item in enumerate(self._items):
            if item.get("status") == "in_progress":
                self._open = index
                out += self._close_open()
        assert self._response is not None
        status, incomplete = status_of(self._finish)
        self._response.update(status=status, incomplete_details=incomplete, output=self._items,
                              usage=usage_to_responses(self._usage))
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._emit(kind, response=self._response)
