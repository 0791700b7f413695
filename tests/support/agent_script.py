"""The fake upstream's side of a two-turn coding-agent task, in each provider protocol.

Turn 1: the request offers tools; the answer calls the first offered tool the test scripted
(`calls`: tool name -> arguments), its JSON arguments streamed in three fragments. Turn 2: the
request carries that tool's result; the answer is the text `agent saw: <result>`, so a test
finds the file's content in the agent's final output only if the result made the round trip.
Whole replies and SSE events are built here as plain data; fake_upstream.py writes them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

AGENT_MODEL = "agent"
USAGE_IN, USAGE_OUT = 21, 9


@dataclass(frozen=True)
class Turn:
    """What the fake answers: a tool call (name, JSON arguments) or text."""

    tool: str | None
    arguments: str
    text: str


def _texts(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def offered(protocol: str, body: dict[str, Any]) -> list[str]:
    """Names of the function tools a request offers."""
    names = []
    for tool in body.get("tools") or []:
        if protocol == "openai-chat" and tool.get("type") == "function":
            names.append(tool["function"]["name"])
        elif tool.get("type") in ((None, "custom") if protocol == "anthropic-messages"
                                  else ("function",)):
            names.append(tool["name"])
    return names


def tool_result(protocol: str, body: dict[str, Any]) -> str | None:
    """The text of the conversation's last tool result, or None before any."""
    if protocol == "openai-chat":
        results = [m for m in body.get("messages", []) if m.get("role") == "tool"]
        return _texts(results[-1].get("content")) if results else None
    if protocol == "anthropic-messages":
        found = None
        for message in body.get("messages", []):
            if message.get("role") == "user" and isinstance(message.get("content"), list):
                for block in message["content"]:
                    if block.get("type") == "tool_result":
                        found = _texts(block.get("content"))
        return found
    items = body.get("input")
    outputs = [i for i in items if i.get("type") == "function_call_output"] \
        if isinstance(items, list) else []
    return _texts(outputs[-1].get("output")) if outputs else None


def turn(protocol: str, body: dict[str, Any], calls: Mapping[str, dict[str, Any]]) -> Turn:
    result = tool_result(protocol, body)
    if result is not None:
        return Turn(None, "", f"agent saw: {result}")
    for name in offered(protocol, body):
        if name in calls:
            return Turn(name, orjson.dumps(calls[name]).decode(), "")
    return Turn(None, "", "agent found no scripted tool among: "
                + ", ".join(offered(protocol, body)))


def fragments(arguments: str) -> list[str]:
    """JSON arguments in three pieces, cut mid-token, as providers stream them."""
    third = max(1, len(arguments) // 3)
    return [arguments[:third], arguments[third:2 * third], arguments[2 * third:]]


# --------------------------------------------------------------------------- OpenAI chat

def chat_whole(model: str, t: Turn) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": t.text or None}
    if t.tool:
        message["tool_calls"] = [{"id": "call_agent1", "type": "function", "function": {
            "name": t.tool, "arguments": t.arguments}}]
    return {"id": "chatcmpl-agent", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if t.tool else "stop"}],
            "usage": {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT,
                      "total_tokens": USAGE_IN + USAGE_OUT}}


def chat_events(model: str, t: Turn) -> Iterator[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        data = {"id": "chatcmpl-agent", "object": "chat.completion.chunk", "created": 1,
                "model": model, "choices": [{"index": 0, "delta": delta,
                                             "finish_reason": finish}], **extra}
        return b"data: " + orjson.dumps(data) + b"\n\n"

    yield chunk({"role": "assistant", "content": ""})
    if t.tool:
        yield chunk({"tool_calls": [{"index": 0, "id": "call_agent1", "type": "function",
                                     "function": {"name": t.tool, "arguments": ""}}]})
        for piece in fragments(t.arguments):
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
    else:
        for word in t.text.split(" "):
            yield chunk({"content": word + " "})
    yield chunk({}, "tool_calls" if t.tool else "stop")
    usage = {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT,
             "total_tokens": USAGE_IN + USAGE_OUT}
    yield b"data: " + orjson.dumps({"id": "chatcmpl-agent", "object": "chat.completion.chunk",
                                    "created": 1, "model": model, "choices": [],
                                    "usage": usage}) + b"\n\n"
    yield b"data: [DONE]\n\n"


# --------------------------------------------------------------------------- Anthropic

def anthropic_whole(model: str, t: Turn) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": t.text}] if t.text else []
    if t.tool:
        content.append({"type": "tool_use", "id": "toolu_agent1", "name": t.tool,
                        "input": orjson.loads(t.arguments)})
    return {"id": "msg_agent", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": "tool_use" if t.tool else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT}}


def anthropic_events(model: str, t: Turn) -> Iterator[bytes]:
    def event(kind: str, **data: Any) -> bytes:
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) \
            + b"\n\n"

    whole = anthropic_whole(model, t)
    yield event("message_start", message={**whole, "content": [], "stop_reason": None,
                                          "usage": {"input_tokens": USAGE_IN,
                                                    "output_tokens": 1}})
    if t.tool:
        yield event("content_block_start", index=0, content_block={
            "type": "tool_use", "id": "toolu_agent1", "name": t.tool, "input": {}})
        for piece in fragments(t.arguments):
            yield event("content_block_delta", index=0,
                        delta={"type": "input_json_delta", "partial_json": piece})
    else:
        yield event("content_block_start", index=0, content_block={"type": "text", "text": ""})
        for word in t.text.split(" "):
            yield event("content_block_delta", index=0,
                        delta={"type": "text_delta", "text": word + " "})
    yield event("content_block_stop", index=0)
    yield event("message_delta", delta={"stop_reason": whole["stop_reason"],
                                        "stop_sequence": None},
                usage={"output_tokens": USAGE_OUT})
    yield event("message_stop")


# --------------------------------------------------------------------------- OpenAI Responses

def _responses_item(t: Turn) -> dict[str, Any]:
    if t.tool:
        return {"type": "function_call", "id": "fc_agent1", "call_id": "call_agent1",
                "name": t.tool, "arguments": t.arguments, "status": "completed"}
    return {"type": "message", "id": "msg_agent1", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": t.text, "annotations": []}]}


def responses_whole(model: str, t: Turn) -> dict[str, Any]:
    return {"id": "resp_agent", "object": "response", "created_at": 1, "model": model,
            "status": "completed", "output": [_responses_item(t)], "error": None,
            "incomplete_details": None,
            "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT,
                      "total_tokens": USAGE_IN + USAGE_OUT,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}}}


def responses_events(model: str, t: Turn) -> Iterator[bytes]:
    sequence = 0

    def event(kind: str, **data: Any) -> bytes:
        nonlocal sequence
        sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(
            {"type": kind, "sequence_number": sequence - 1, **data}) + b"\n\n"

    whole = responses_whole(model, t)
    item = _responses_item(t)
    yield event("response.created", response={**whole, "status": "in_progress", "output": []})
    if t.tool:
        yield event("response.output_item.added", output_index=0,
                    item={**item, "arguments": "", "status": "in_progress"})
        for piece in fragments(t.arguments):
            yield event("response.function_call_arguments.delta", item_id=item["id"],
                        output_index=0, delta=piece)
        yield event("response.function_call_arguments.done", item_id=item["id"],
                    output_index=0, arguments=t.arguments)
    else:
        yield event("response.output_item.added", output_index=0,
                    item={**item, "content": [], "status": "in_progress"})
        part = {"type": "output_text", "text": "", "annotations": []}
        yield event("response.content_part.added", item_id=item["id"], output_index=0,
                    content_index=0, part=part)
        for word in t.text.split(" "):
            yield event("response.output_text.delta", item_id=item["id"], output_index=0,
                        content_index=0, delta=word + " ")
        yield event("response.output_text.done", item_id=item["id"], output_index=0,
                    content_index=0, text=t.text)
        yield event("response.content_part.done", item_id=item["id"], output_index=0,
                    content_index=0, part={**part, "text": t.text})
    yield event("response.output_item.done", output_index=0, item=item)
    yield event("response.completed", response=whole)
