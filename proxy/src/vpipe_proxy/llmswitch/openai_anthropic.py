"""OpenAI Chat Completions client <-> Anthropic Messages provider: requests and whole replies.

Pure functions over parsed JSON. What happens to each request field, role, part and tool type
is the CHAT_TO_ANTHROPIC table in `field_policy`. One default is applied because Anthropic
requires the field and OpenAI clients often omit it: `max_tokens` (DEFAULT_MAX_TOKENS).
"""

from __future__ import annotations

import time
from typing import Any, Final

import orjson

from vpipe_proxy.errors import ProxyError, bad_request
from vpipe_proxy.llmswitch.field_policy import CHAT_TO_ANTHROPIC, Screen

DEFAULT_MAX_TOKENS: Final = 4096
# OpenAI's reasoning effort as an Anthropic thinking budget (tokens).
EFFORT_BUDGET: Final = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576,
                        "xhigh": 32768, "max": 65536}

STOP_TO_FINISH: Final = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "tool_use": "tool_calls", "refusal": "content_filter",
}


def _unsupported(field: str, why: str) -> ProxyError:
    return Screen(CHAT_TO_ANTHROPIC).refuse(field, why)


def request_to_anthropic(body: dict[str, Any], screen: Screen | None = None) -> dict[str, Any]:
    """An OpenAI Chat Completions request as an Anthropic Messages request."""
    screen = screen or Screen(CHAT_TO_ANTHROPIC)
    screen.fields(body)
    _check_neutral(body)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    out: dict[str, Any] = {"model": body["model"], "max_tokens": max_tokens}
    system, messages = _messages(body["messages"])
    if system:
        out["system"] = system
    out["messages"] = messages
    temperature = body.get("temperature")
    if temperature is not None:
        if temperature > 1:
            raise _unsupported("temperature", f"{temperature} is above Anthropic's maximum of 1")
        out["temperature"] = temperature
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    user = body.get("user") or body.get("safety_identifier")
    if user:
        out["metadata"] = {"user_id": str(user)}
    if body.get("tools"):
        tools = [_tool(t, f"tools[{i}]") for i, t in enumerate(body["tools"])
                 if screen.keep_tool(t, f"tools[{i}]")]
        if tools:
            out["tools"] = tools
    # A choice among tools that were all left out would make the provider refuse the request.
    every_tool_dropped = bool(body.get("tools")) and "tools" not in out
    choice = None if every_tool_dropped else _tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False:
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None:
        out["tool_choice"] = choice
    effort = body.get("reasoning_effort")
    if effort is not None and effort != "none":
        budget = EFFORT_BUDGET.get(effort)
        if budget is None:
            raise bad_request(f"'reasoning_effort' {effort!r} is not one of "
                              + ", ".join(EFFORT_BUDGET), param="reasoning_effort")
        if budget >= out["max_tokens"]:
            raise _unsupported("reasoning_effort", f"its thinking budget ({budget} tokens) must be "
                               f"below max_tokens ({out['max_tokens']}); raise max_tokens")
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if body.get("stream"):
        out["stream"] = True
    return out


def _check_neutral(body: dict[str, Any]) -> None:
    """Fields accepted only at values that mean 'nothing special'."""
    if body.get("n") not in (None, 1):
        raise _unsupported("n", "Anthropic returns one choice per request")
    for field in ("presence_penalty", "frequency_penalty"):
        if body.get(field) not in (None, 0, 0.0):
            raise _unsupported(field, "Anthropic has no penalties")
    if body.get("logprobs"):
        raise _unsupported("logprobs", "Anthropic does not return log probabilities")
    if body.get("modalities") not in (None, ["text"]):
        raise _unsupported("modalities", "Anthropic answers in text only")
    response_format = body.get("response_format")
    if response_format is not None and response_format.get("type") != "text":
        raise _unsupported("response_format", "use a tool with an input_schema for structured "
                           "output with Anthropic")


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise _unsupported(f"{where}[{i}]", "only text parts are allowed here")
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    if content is None:
        return ""
    raise bad_request(f"'{where}' must be a string or an array of parts", param=where)


def _messages(source: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        # Anthropic wants user/assistant turns to alternate: merge neighbours of one role.
        if out and out[-1]["role"] == role:
            out[-1]["content"] += blocks
        else:
            out.append({"role": role, "content": blocks})

    for i, message in enumerate(source):
        where = f"messages[{i}]"
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text(message.get("content"), f"{where}.content")
            if out:
                # Anthropic takes later system messages in place, where the client put them.
                out.append({"role": "system", "content": [{"type": "text", "text": text}]})
            else:
                system.append(text)
        elif role == "user":
            add("user", _user_blocks(message.get("content"), f"{where}.content"))
        elif role == "assistant":
            add("assistant", _assistant_blocks(message, where))
        elif role == "tool":
            add("user", [{"type": "tool_result", "tool_use_id": message.get("tool_call_id"),
                          "content": _text(message.get("content"), f"{where}.content")}])
        else:
            raise _unsupported(f"{where}.role", f"role {role!r} has no Anthropic equivalent")
    return "\n\n".join(system), out


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise bad_request(f"'{where}' must be a string or an array of parts", param=where)
    blocks = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append({"type": "image", "source": _image_source(part["image_url"]["url"])})
        else:
            raise _unsupported(f"{where}[{i}]", f"content part type {kind!r} has no Anthropic "
                               "equivalent")
    return blocks


def _image_source(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header.removeprefix("data:").removesuffix(";base64")
        return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = _text(message.get("content"), f"{where}.content")
    if text:
        blocks.append({"type": "text", "text": text})
    for j, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError as e:
            raise bad_request(f"'{where}.tool_calls[{j}].function.arguments' is not JSON ({e})",
                              param=f"{where}.tool_calls[{j}].function.arguments") from e
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"),
                       "input": arguments})
    return blocks


def _tool(tool: Any, at: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise _unsupported(at, "only function tools exist in Anthropic's custom tools")
    function = tool.get("function") or {}
    out = {"name": function.get("name"),
           "input_schema": function.get("parameters") or {"type": "object", "properties": {}}}
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    raise bad_request("'tool_choice' must be auto, required, none or a function",
                      param="tool_choice")


def usage_to_openai(usage: Any) -> dict[str, Any]:
    """Anthropic usage -> OpenAI usage; cache reads and writes count as prompt tokens."""
    if not isinstance(usage, dict):
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + \
        int(usage.get("cache_creation_input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


def response_to_openai(data: dict[str, Any], model: str) -> dict[str, Any]:
    """An Anthropic message as an OpenAI chat.completion."""
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in data.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
        elif kind == "tool_use":
            calls.append({"id": block.get("id"), "type": "function", "function": {
                "name": block.get("name"), "arguments": orjson.dumps(block.get("input")).decode()}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None,
                               "refusal": None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-" + str(data.get("id", "")).removeprefix("msg_"),
        "object": "chat.completion", "created": int(time.time()),
        "model": data.get("model") or model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": STOP_TO_FINISH.get(data.get("stop_reason") or "end_turn",
                                                         "stop")}],
        "usage": usage_to_openai(data.get("usage")),
    }
