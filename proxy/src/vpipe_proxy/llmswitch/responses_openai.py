"""OpenAI Responses client <-> OpenAI Chat Completions provider: requests and whole replies.

Pure functions over parsed JSON. What happens to each request field, input item and tool type
is the RESPONSES_TO_CHAT table in `field_policy`. The Responses API keeps conversations on
OpenAI's servers (`previous_response_id`, `store: true`); vpipe keeps no such state, so those
are a 400 that says to send the whole conversation in `input`. Reasoning summaries are returned
from the provider's reasoning text when it has any.
"""

from __future__ import annotations

import time
from typing import Any, Final

import orjson

from vpipe_proxy.errors import ProxyError, bad_request
from vpipe_proxy.llmswitch.field_policy import RESPONSES_TO_CHAT, Screen

# Fields Chat Completions takes under the same name and meaning.
_SAME: Final = ("temperature", "top_p", "user", "parallel_tool_calls", "prompt_cache_key",
                "prompt_cache_retention", "prompt_cache_options", "safety_identifier",
                "service_tier")


def _unsupported(field: str, why: str) -> ProxyError:
    return Screen(RESPONSES_TO_CHAT).refuse(field, why)


def request_to_chat(body: dict[str, Any], screen: Screen | None = None) -> dict[str, Any]:
    """A Responses request as a Chat Completions request."""
    screen = screen or Screen(RESPONSES_TO_CHAT)
    screen.fields(body)
    if body.get("store"):
        raise screen.refuse("store", "vpipe does not store responses; send store: false")
    out: dict[str, Any] = {"model": body["model"], "messages": _messages(body)}
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    for field in _SAME:
        if body.get(field) is not None:
            out[field] = body[field]
    if body.get("tools"):
        tools = [_tool(t, f"tools[{i}]") for i, t in enumerate(body["tools"])
                 if screen.keep_tool(t, f"tools[{i}]")]
        if tools:
            out["tools"] = tools
        else:
            out.pop("parallel_tool_calls", None)  # chat APIs refuse it without tools
    choice = body.get("tool_choice")
    if body.get("tools") and "tools" not in out:
        choice = None  # every tool was left out: a choice among them would be refused
    if isinstance(choice, str):
        out["tool_choice"] = choice
    elif isinstance(choice, dict):
        if choice.get("type") != "function":
            raise _unsupported("tool_choice", f"tool choice type {choice.get('type')!r}")
        out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    text = body.get("text") or {}
    text_format = text.get("format")
    if text_format is not None and text_format.get("type") != "text":
        out["response_format"] = _response_format(text_format)
    if text.get("verbosity") is not None:
        out["verbosity"] = text["verbosity"]
    reasoning = body.get("reasoning") or {}
    if reasoning.get("effort"):
        out["reasoning_effort"] = reasoning["effort"]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _response_format(text_format: dict[str, Any]) -> dict[str, Any]:
    if text_format.get("type") == "json_object":
        return {"type": "json_object"}
    if text_format.get("type") == "json_schema":
        schema = {k: text_format[k] for k in ("name", "schema", "strict", "description")
                  if k in text_format}
        return {"type": "json_schema", "json_schema": schema}
    raise _unsupported("text.format", f"format type {text_format.get('type')!r}")


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    if not isinstance(items, list):
        raise bad_request("'input' must be a string or an array of input items", param="input")
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise bad_request(f"'{where}' must be an object", param=where)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments", "")}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"),
                             "content": output if isinstance(output, str)
                             else orjson.dumps(output).decode()})
        elif kind == "reasoning":
            continue  # earlier reasoning is not input for chat providers either
        else:
            raise _unsupported(where, f"input item type {kind!r} has no chat equivalent")
    return messages


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise bad_request(f"'{where}.role' must be user, assistant, system or developer",
                          param=f"{where}.role")
    if role == "developer":
        role = "system"  # what developer means to chat APIs; most of them know no other
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content or []):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "input_image" and part.get("image_url"):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            raise _unsupported(f"{where}.content[{j}]", f"content type {kind!r}")
    if role != "user" and all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _tool(tool: Any, at: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise _unsupported(at, f"built-in tool {kind!r} runs only on OpenAI's servers")
    function = {"name": tool.get("name"), "parameters": tool.get("parameters") or
                {"type": "object", "properties": {}}}
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def response_id(chat_id: str) -> str:
    return "resp_" + chat_id.removeprefix("chatcmpl-")


def usage_to_responses(usage: Any) -> dict[str, Any]:
    usage = usage if isinstance(usage, dict) else {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning = int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + completion}


def status_of(finish: str | None) -> tuple[str, dict[str, Any] | None]:
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def envelope(rid: str, model: str, request: dict[str, Any], status: str) -> dict[str, Any]:
    """The fields every Response object carries, echoing the request's settings."""
    return {
        "id": rid, "object": "response", "created_at": int(time.time()), "status": status,
        "model": model, "output": [], "error": None, "incomplete_details": None,
        "instructions": request.get("instructions"), "metadata": {},
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "temperature": request.get("temperature"), "top_p": request.get("top_p"),
        "tool_choice": request.get("tool_choice", "auto"), "tools": request.get("tools", []),
        "max_output_tokens": request.get("max_output_tokens"), "usage": None,
    }


def response_from_chat(data: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """A chat.completion as a Response object."""
    choices = data.get("choices") or []
    if not choices:
        raise ProxyError(502, "upstream_protocol_error", "the provider's reply has no choices")
    message = choices[0].get("message") or {}
    rid = response_id(str(data.get("id", "")))
    output: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if reasoning:
        output.append({"type": "reasoning", "id": rid.replace("resp_", "rs_"),
                       "summary": [{"type": "summary_text", "text": reasoning}]})
    if message.get("content"):
        output.append({"type": "message", "id": rid.replace("resp_", "msg_"), "role": "assistant",
                       "status": "completed", "content": [
                           {"type": "output_text", "text": message["content"],
                            "annotations": []}]})
    for i, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        output.append({"type": "function_call", "id": f"fc_{rid[5:]}_{i}",
                       "call_id": call.get("id"), "name": function.get("name"),
                       "arguments": function.get("arguments", ""), "status": "completed"})
    status, incomplete = status_of(choices[0].get("finish_reason"))
    response = envelope(rid, data.get("model") or request["model"], request, status)
    response.update(output=output, incomplete_details=incomplete,
                    usage=usage_to_responses(data.get("usage")))
    return response
