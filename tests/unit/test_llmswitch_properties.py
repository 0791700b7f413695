"""Property tests of the llmswitch converters (hypothesis).

Aspects: Anthropic -> OpenAI -> Anthropic request round trips keep system, texts, tool calls and
tool results; streams converted in either direction, cut at random byte positions, reassemble
exactly the texts and tool arguments the provider sent.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from vpipe_proxy.llmswitch.anthropic_openai import request_to_openai
from vpipe_proxy.llmswitch.anthropic_openai_stream import OpenAIToAnthropicStream
from vpipe_proxy.llmswitch.openai_anthropic import request_to_anthropic
from vpipe_proxy.llmswitch.openai_anthropic_stream import AnthropicToOpenAIStream
from vpipe_proxy.sse import SSEDecoder

TEXT = st.text(min_size=1, max_size=30).filter(lambda t: t.strip() == t and t != "")
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8)


@st.composite
def conversations(draw: st.DrawFn) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for turn in range(draw(st.integers(1, 4))):
        messages.append({"role": "user", "content": [{"type": "text", "text": draw(TEXT)}]})
        blocks: list[dict[str, Any]] = [{"type": "text", "text": draw(TEXT)}]
        calls = draw(st.integers(0, 2))
        for i in range(calls):
            blocks.append({"type": "tool_use", "id": f"t{turn}_{i}", "name": f"tool{i}",
                           "input": draw(st.dictionaries(st.text(min_size=1, max_size=5),
                                                         JSON_VALUE, max_size=3))})
        messages.append({"role": "assistant", "content": blocks})
        if calls:
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": f"t{turn}_{i}", "content": draw(TEXT)}
                for i in range(calls)]})
    messages.append({"role": "user", "content": [{"type": "text", "text": draw(TEXT)}]})
    return {"model": "m", "max_tokens": 100, "system": draw(TEXT), "messages": _merge(messages)}


def _merge(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        if out and out[-1]["role"] == message["role"]:
            out[-1]["content"] = out[-1]["content"] + message["content"]
        else:
            out.append({**message, "content": list(message["content"])})
    return out


@settings(max_examples=150, deadline=None)
@given(conversations())
def test_anthropic_openai_anthropic_round_trip(request: dict[str, Any]) -> None:
    back = request_to_anthropic(request_to_openai(request))
    assert back["system"] == request["system"]
    assert back["max_tokens"] == request["max_tokens"]
    # OpenAI puts a user turn's texts into one message; tool results first, as Anthropic wants.
    assert _facts(back["messages"]) == _facts(request["messages"])


def _facts(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    facts: list[tuple[str, Any]] = []
    for message in messages:
        texts = "".join(b["text"] for b in message["content"] if b["type"] == "text")
        facts.append((message["role"], texts))
        for b in message["content"]:
            if b["type"] == "tool_use":
                facts.append(("call", (b["id"], b["name"], b["input"])))
            elif b["type"] == "tool_result":
                facts.append(("result", (b["tool_use_id"], b["content"])))
    return facts


def _splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    return [*pieces, data[start:]]


def _openai_chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return b"data: " + orjson.dumps({"id": "chatcmpl-1", "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=6),
       st.lists(JSON_VALUE, max_size=2), st.lists(st.integers(0, 10_000), max_size=6))
def test_openai_to_anthropic_stream_reassembles(texts: list[str], tools: list[Any],
                                                cuts: list[int]) -> None:
    chunks = [_openai_chunk({"content": t}) for t in texts]
    for i, value in enumerate(tools):
        arguments = orjson.dumps({"v": value}).decode()
        chunks.append(_openai_chunk({"tool_calls": [{"index": i, "id": f"c{i}", "type": "function",
                                                     "function": {"name": "f", "arguments": ""}}]}))
        for j in range(0, len(arguments), 3):
            chunks.append(_openai_chunk({"tool_calls": [
                {"index": i, "function": {"arguments": arguments[j:j + 3]}}]}))
    chunks += [_openai_chunk({}, "tool_calls" if tools else "stop"), b"data: [DONE]\n\n"]
    converter = OpenAIToAnthropicStream("m")
    out = b"".join(converter.feed(p) for p in _splits(b"".join(chunks), cuts)) + converter.finish()
    events = [orjson.loads(e.data) for e in SSEDecoder().feed(out)]
    blocks: dict[int, dict[str, Any]] = {}
    for event in events:
        if event["type"] == "content_block_start":
            blocks[event["index"]] = {**event["content_block"], "json": ""}
        elif event["type"] == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta":
                blocks[event["index"]]["text"] += delta["text"]
            else:
                blocks[event["index"]]["json"] += delta["partial_json"]
    assert blocks[0]["text"] == "".join(texts)
    assert [orjson.loads(b["json"]) for b in blocks.values() if b["type"] == "tool_use"] == \
        [{"v": v} for v in tools]
    assert events[-1]["type"] == "message_stop"


def _anthropic_event(kind: str, **data: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + \
        b"\n\n"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=6),
       st.lists(JSON_VALUE, max_size=2), st.lists(st.integers(0, 10_000), max_size=6))
def test_anthropic_to_openai_stream_reassembles(texts: list[str], tools: list[Any],
                                                cuts: list[int]) -> None:
    events = [_anthropic_event("message_start", message={"id": "msg_1", "usage": {}}),
              _anthropic_event("content_block_start", index=0,
                               content_block={"type": "text", "text": ""})]
    events += [_anthropic_event("content_block_delta", index=0,
                                delta={"type": "text_delta", "text": t}) for t in texts]
    events.append(_anthropic_event("content_block_stop", index=0))
    for i, value in enumerate(tools, start=1):
        arguments = orjson.dumps({"v": value}).decode()
        events.append(_anthropic_event("content_block_start", index=i, content_block={
            "type": "tool_use", "id": f"t{i}", "name": "f", "input": {}}))
        events += [_anthropic_event("content_block_delta", index=i, delta={
            "type": "input_json_delta", "partial_json": arguments[j:j + 4]})
            for j in range(0, len(arguments), 4)]
        events.append(_anthropic_event("content_block_stop", index=i))
    events += [_anthropic_event("message_delta", delta={"stop_reason": "end_turn"},
                                usage={"output_tokens": 1}),
               _anthropic_event("message_stop")]
    converter = AnthropicToOpenAIStream("m", include_usage=False)
    out = b"".join(converter.feed(p) for p in _splits(b"".join(events), cuts)) + \
        converter.finish()
    decoded = [e.data for e in SSEDecoder().feed(out)]
    assert decoded[-1] == "[DONE]"
    chunks = [orjson.loads(d) for d in decoded[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    arguments: dict[int, str] = {}
    for chunk in chunks:
        for call in chunk["choices"][0]["delta"].get("tool_calls") or []:
            arguments[call["index"]] = arguments.get(call["index"], "") + \
                call["function"].get("arguments", "")
    assert text == "".join(texts)
    assert [orjson.loads(arguments[i]) for i in sorted(arguments)] == [{"v": v} for v in tools]
