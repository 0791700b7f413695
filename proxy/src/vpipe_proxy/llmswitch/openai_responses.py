"""OpenAI Chat Completions client <-> OpenAI Responses provider: requests, replies, streams.

For providers that only speak the Responses API. Requests are converted as a whole; replies
and streams come back as chat.completion objects and chunks. What happens to each request field
is the CHAT_TO_RESPONSES table in `field_policy`.
"""

from __future__ import annotations

import time
from typing import Any, Final

import orjson

from vpipe_proxy.errors import ProxyError
from vpipe_proxy.llmswitch.field_policy import CHAT_TO_RESPONSES, Screen
from vpipe_proxy.llmswitch.stream_common import ChatChunkStream

# Fields accepted only at values that mean "nothing special".
_NEUTRAL: Final = {"n": (None, 1), "stop": (None,), "logprobs": (None, False),
                   "presence_penalty": (None, 0), "frequency_penalty": (None, 0),
                   "modalities": (None, ["text"])}
_SAME: Final = ("temperature", "top_p", "user", "parallel_tool_calls", "metadata",
                "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options",
                "safety_identifier", "service_tier")


def _unsupported(field: str, why: str) -> ProxyError:
    return Screen(CHAT_TO_RESPONSES).refuse(field, why)


def request_to_responses(body: dict[str, Any], screen: Screen | None = None) -> dict[str, Any]:
    screen = screen or Screen(CHAT_TO_RESPONSES)
    screen.fields(body)
    for key, allowed in _NEUTRAL.items():
        if body.get(key) not in allowed:
            raise _unsupported(key, "the Responses API has no such setting")
    out: dict[str, Any] = {"model": body["model"], "input": _input(body["messages"]),
                           "store": bool(body.get("store", False))}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None:
        out["max_output_tokens"] = limit
    for field in _SAME:
        if body.get(field) is not None:
            out[field] = body[field]
    if body.get("tools"):
        tools = [_tool(t, f"tools[{i}]") for i, t in enumerate(body["tools"])
                 if screen.keep_tool(t, f"tools[{i}]")]
        if tools:
            out["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, str):
        out["tool_choice"] = choice
    elif isinstance(choice, dict):
        out["tool_choice"] = {"type": "function", "name": (choice.get("function") or {}).get("name")}
    text: dict[str, Any] = {}
    response_format = body.get("response_format")
    if response_format and response_format.get("type") != "text":
        if response_format.get("type") == "json_schema":
            text["format"] = {"type": "json_schema", **(response_format.get("json_schema") or {})}
        else:
            text["format"] = {"type": "json_object"}
    if body.get("verbosity") is not None:
        text["verbosity"] = body["verbosity"]
    if text:
        out["text"] = text
    if body.get("reasoning_effort"):
        out["reasoning"] = {"effort": body["reasoning_effort"]}
    if body.get("stream"):
        out["stream"] = True
    return out


def _input(messages: list[Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content")
        if role == "tool":
            items.append({"type": "function_call_output", "call_id": message.get("tool_call_id"),
                          "output": content if isinstance(content, str)
                          else orjson.dumps(content).decode()})
            continue
        if role not in ("user", "assistant", "system", "developer"):
            raise _unsupported(f"messages[{i}].role", f"role {role!r}")
        if content:
            items.append({"role": role, "content": _content(content, role, f"messages[{i}]")})
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            items.append({"type": "function_call", "call_id": call.get("id"),
                          "name": function.get("name"), "arguments": function.get("arguments", "")})
    return items


def _content(content: Any, role: str, where: str) -> Any:
    if isinstance(content, str):
        return content
    text_type = "output_text" if role == "assistant" else "input_text"
    parts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": text_type, "text": part.get("text", "")})
        elif kind == "image_url" and role == "user":
            parts.append({"type": "input_image", "image_url": part["image_url"]["url"]})
        else:
            raise _unsupported(f"{where}.content[{j}]", f"content part type {kind!r}")
    return parts


def _tool(tool: Any, at: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise _unsupported(at, "only function tools are converted")
    function = tool.get("function") or {}
    out = {"type": "function", "name": function.get("name"),
           "parameters": function.get("parameters") or {"type": "object", "properties": {}}}
    for key in ("description", "strict"):
        if function.get(key) is not None:
            out[key] = function[key]
    return out


def finish_reason(response: dict[str, Any], has_calls: bool) -> str:
    details = response.get("incomplete_details") or {}
    if response.get("status") == "incomplete":
        return "content_filter" if details.get("reason") == "content_filter" else "length"
    return "tool_calls" if has_calls else "stop"


def usage_to_chat(usage: Any) -> dict[str, Any]:
    usage = usage if isinstance(usage, dict) else {}
    prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": int(
                (usage.get("input_tokens_details") or {}).get("cached_tokens") or 0)},
            "completion_tokens_details": {"reasoning_tokens": int(
                (usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0)}}


def chat_id(response_id: str) -> str:
    return "chatcmpl-" + response_id.removeprefix("resp_")


def response_to_chat(data: dict[str, Any], model: str) -> dict[str, Any]:
    texts, reasoning, calls = [], [], []
    for item in data.get("output") or []:
        kind = item.get("type")
        if kind == "message":
            texts += [p.get("text", "") for p in item.get("content") or []
                      if p.get("type") == "output_text"]
        elif kind == "reasoning":
            reasoning += [s.get("text", "") for s in item.get("summary") or []]
        elif kind == "function_call":
            calls.append({"id": item.get("call_id"), "type": "function", "function": {
                "name": item.get("name"), "arguments": item.get("arguments", "")}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None,
                               "refusal": None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    return {"id": chat_id(str(data.get("id", ""))), "object": "chat.completion",
            "created": int(data.get("created_at") or time.time()),
            "model": data.get("model") or model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish_reason(data, bool(calls))}],
            "usage": usage_to_chat(data.get("usage"))}


class ResponsesToChatStream(ChatChunkStream):
    """Responses stream events -> chat.completion.chunk stream, one stream's state."""

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__(model, include_usage)
        self._tools: dict[str, int] = {}  # function_call item id -> chat tool_call index

    def _on_event(self, kind: str | None, data: dict[str, Any]) -> bytes:
        kind = data.get("type", kind)
        if kind == "response.created":
            response = data.get("response") or {}
            self._head["id"] = chat_id(str(response.get("id", "")))
            self._head["model"] = response.get("model") or self._head["model"]
            return self._chunk({"role": "assistant", "content": ""})
        if kind == "response.output_text.delta":
            return self._chunk({"content": data.get("delta", "")})
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return self._chunk({"reasoning_content": data.get("delta", "")})
        if kind == "response.output_item.added":
            item = data.get("item") or {}
            if item.get("type") != "function_call":
                return b""
            self._tools[item.get("id", "")] = index = len(self._tools)
            return self._chunk({"tool_calls": [{"index": index, "id": item.get("call_id"),
                                                "type": "function", "function": {
                                                    "name": item.get("name"), "arguments": ""}}]})
        if kind == "response.function_call_arguments.delta":
            position = self._tools.get(data.get("item_id", ""))
            if position is None:
                return b""
            return self._chunk({"tool_calls": [{"index": position, "function": {
                "arguments": data.get("delta", "")}}]})
        if kind in ("response.completed", "response.incomplete"):
            response = data.get("response") or {}
            return self._end(finish_reason(response, bool(self._tools)),
                             usage_to_chat(response.get("usage")))
        return b""  # lifecycle and .done events repeat what the deltas carried
