"""Anthropic Messages client <-> OpenAI Chat Completions provider: requests and whole replies.

Pure functions over parsed JSON. What happens to each request field, block and tool type is
the ANTHROPIC_TO_CHAT table in `field_policy`: mapped here, dropped as a hint (the Screen
notes it for the x-vpipe-dropped header), or a 400 naming it.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from vpipe_proxy.errors import ProxyError, bad_request
from vpipe_proxy.llmswitch.field_policy import ANTHROPIC_TO_CHAT, UNSUPPORTED_FIELD, Screen

__all__ = ["TOOL_ARGUMENTS_INVALID", "UNSUPPORTED_FIELD", "request_to_openai",
           "response_to_anthropic"]

TOOL_ARGUMENTS_INVALID: Final = "tool_arguments_invalid"

FINISH_TO_STOP: Final = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def _unsupported(field: str, why: str) -> ProxyError:
    return Screen(ANTHROPIC_TO_CHAT).refuse(field, why)


def request_to_openai(body: dict[str, Any], screen: Screen | None = None) -> dict[str, Any]:
    """An Anthropic Messages request as an OpenAI Chat Completions request."""
    screen = screen or Screen(ANTHROPIC_TO_CHAT)
    screen.fields(body)
    out: dict[str, Any] = {"model": body["model"], "max_tokens": body["max_tokens"]}
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        messages.append({"role": "system", "content": _system_text(system)})
    for index, message in enumerate(body["messages"]):
        messages += _message(message, f"messages[{index}]")
    out["messages"] = messages
    for src, dst in (("temperature", "temperature"), ("top_p", "top_p"),
                     ("stop_sequences", "stop")):
        if body.get(src) is not None:
            out[dst] = body[src]
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id") is not None:
        out["user"] = str(metadata["user_id"])
    if body.get("tools"):
        tools = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(body["tools"])
                 if screen.keep_tool(tool, f"tools[{i}]")]
        if tools:
            out["tools"] = tools
    if body.get("tool_choice") is not None and ("tools" in out or not body.get("tools")):
        _tool_choice(body["tool_choice"], out)
    _reasoning(body, out)
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _reasoning(body: dict[str, Any], out: dict[str, Any]) -> None:
    """thinking and output_config as reasoning_effort and response_format."""
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        effort = None
    elif kind == "enabled" and effort is None:
        budget = thinking.get("budget_tokens") or 0  # type: ignore[union-attr]
        # OpenAI expresses a reasoning budget as an effort level, not a token count.
        effort = "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    if effort is not None:
        out["reasoning_effort"] = effort
    output_format = config.get("format") if isinstance(config, dict) else None
    if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
        out["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "output", "schema": output_format.get("schema") or {}, "strict": True}}


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        texts = []
        for i, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise bad_request(f"'system[{i}]' must be a text block", param=f"system[{i}]")
            texts.append(str(block.get("text", "")))
        return "\n\n".join(texts)
    raise bad_request("'system' must be a string or an array of text blocks", param="system")


def _message(message: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant",
                                                                      "system"):
        raise bad_request(f"'{where}' must be an object with role 'user', 'assistant' or "
                          "'system'", param=where)
    content = message.get("content")
    if message["role"] == "system":
        # Chat Completions takes system messages anywhere, so it stays where the client put it.
        return [{"role": "system", "content": _system_text(content)}]
    if isinstance(content, str):
        return [{"role": message["role"], "content": content}]
    if not isinstance(content, list):
        raise bad_request(f"'{where}.content' must be a string or an array of content blocks",
                          param=f"{where}.content")
    if message["role"] == "assistant":
        return [_assistant(content, where)]
    return _user(content, where)


def _user(blocks: list[Any], where: str) -> list[dict[str, Any]]:
    # OpenAI wants tool results as separate `tool` messages right after the assistant's call.
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        at = f"{where}.content[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, at)}})
        elif kind == "tool_result":
            text = _tool_result_text(block.get("content"), at)
            if block.get("is_error"):
                text = f"[tool error] {text}"
            tool_messages.append({"role": "tool", "tool_call_id": block["tool_use_id"],
                                  "content": text})
        else:
            raise _unsupported(at, f"content block type {kind!r} has no OpenAI equivalent")
    out = list(tool_messages)
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        content: Any = "\n".join(p["text"] for p in parts) if only_text and len(parts) == 1 \
            else parts
        out.append({"role": "user", "content": content})
    return out


def _image_url(block: dict[str, Any], at: str) -> str:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        return f"data:{source['media_type']};base64,{source['data']}"
    if source.get("type") == "url":
        return str(source["url"])
    raise _unsupported(f"{at}.source", f"image source type {source.get('type')!r}")


def _tool_result_text(content: Any, at: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for i, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _unsupported(f"{at}.content[{i}]",
                               "OpenAI tool results carry text only (no images or documents)")
        texts.append(str(block["text"]))
    return "\n".join(texts)


def _assistant(blocks: list[Any], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"],
                                       "arguments": orjson.dumps(block.get("input", {})).decode()}})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # earlier turns' thinking: Anthropic's own API ignores it as input too
        else:
            raise _unsupported(f"{where}.content[{i}]",
                               f"assistant content block type {kind!r} has no OpenAI equivalent")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool(tool: Any, at: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or "name" not in tool:
        raise bad_request(f"'{at}' must be a tool with a name and input_schema", param=at)
    if tool.get("type") not in (None, "custom"):
        raise _unsupported(at, f"server tool {tool.get('type')!r} runs only on Anthropic's API")
    function: dict[str, Any] = {"name": tool["name"],
                                "parameters": tool.get("input_schema") or {"type": "object"}}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any, out: dict[str, Any]) -> None:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise bad_request("'tool_choice.type' must be auto, any, tool or none",
                          param="tool_choice")
    if choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False


def usage_to_anthropic(usage: Any) -> dict[str, Any]:
    """OpenAI usage -> Anthropic usage; cached prompt tokens become cache reads."""
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    prompt = int(usage.get("prompt_tokens") or 0)
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    return {"input_tokens": prompt - cached, "output_tokens": int(usage.get("completion_tokens") or 0),
            "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0}


def parse_arguments(arguments: str, name: str) -> Any:
    """Tool-call arguments as JSON, or a 502 naming the tool (the provider broke the contract)."""
    try:
        return orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError as e:
        raise ProxyError(502, TOOL_ARGUMENTS_INVALID,
                         f"the provider returned arguments for tool '{name}' that are not JSON "
                         f"({e}); an Anthropic client needs a JSON object") from e


def response_to_anthropic(data: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat.completion as an Anthropic message."""
    choices = data.get("choices") or []
    if not choices:
        raise ProxyError(502, "upstream_protocol_error", "the provider's reply has no choices")
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        name = str(function.get("name", ""))
        content.append({"type": "tool_use", "id": call.get("id") or "", "name": name,
                        "input": parse_arguments(function.get("arguments", ""), name)})
    finish = choice.get("finish_reason")
    return {
        "id": "msg_" + str(data.get("id", "")).removeprefix("chatcmpl-"),
        "type": "message", "role": "assistant", "model": data.get("model") or model,
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(finish or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage_to_anthropic(data.get("usage")),
    }
