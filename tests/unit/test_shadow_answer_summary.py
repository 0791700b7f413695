"""Reassembling answers for the shadow comparison (answer_summary, shadow.summarize_stream).

Aspects: a stream of each protocol reassembles into the `Answer` of the same reply sent whole;
any split of the bytes gives the same result; tool-call arguments streamed in fragments, or sent
by another protocol, compare equal once canonical; in-band errors, Responses' `response.failed`
and a Responses stream without its end are failures (compared as 502); only choice 0 counts.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from vpipe_proxy.answer_summary import Answer, StreamSummary, answer_of, tool_call
from vpipe_proxy.shadow import Summary, V1Stream, summarize, summarize_stream


def sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def chat_chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> bytes:
    return sse({"object": "chat.completion.chunk",
                "choices": [{"index": index, "delta": delta, "finish_reason": finish}]})


WEATHER = {"city": "Paris", "days": 3}
CHAT_STREAM = [
    chat_chunk({"role": "assistant", "content": "Let me"}),
    chat_chunk({"content": " check."}),
    chat_chunk({"content": "ignored: choice 1"}, index=1),
    chat_chunk({"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                "function": {"name": "get_weather", "arguments": ""}}]}),
    chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Par'}}]}),
    chat_chunk({"tool_calls": [{"index": 1, "id": "c2", "type": "function",
                                "function": {"name": "now", "arguments": ""}}]}),
    chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'is", "days": 3}'}}]}),
    chat_chunk({}, "tool_calls"),
    sse({"choices": [], "usage": {"completion_tokens": 9}}),
    b"data: [DONE]\n\n",
]
CHAT_WHOLE = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
    "role": "assistant", "content": "Let me check.", "tool_calls": [
        {"id": "c1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"days":3,"city":"Paris"}'}},
        {"id": "c2", "type": "function", "function": {"name": "now", "arguments": "{}"}}]}}],
    "usage": {"completion_tokens": 9}}

ANTHROPIC_STREAM = [
    sse({"type": "message_start", "message": {"usage": {"output_tokens": 0}}}, "message_start"),
    sse({"type": "ping"}, "ping"),
    sse({"type": "content_block_start", "index": 0,
         "content_block": {"type": "text", "text": ""}}, "content_block_start"),
    sse({"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": "Let me check."}}, "content_block_delta"),
    sse({"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}},
        "content_block_start"),
    *(sse({"type": "content_block_delta", "index": 1,
           "delta": {"type": "input_json_delta", "partial_json": part}}, "content_block_delta")
      for part in ('{"city": "Par', 'is", "days"', ": 3}")),
    sse({"type": "content_block_start", "index": 2, "content_block": {
        "type": "tool_use", "id": "t2", "name": "now", "input": {}}}, "content_block_start"),
    sse({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
         "usage": {"output_tokens": 9}}, "message_delta"),
    sse({"type": "message_stop"}, "message_stop"),
]
ANTHROPIC_WHOLE = {"type": "message", "stop_reason": "tool_use", "usage": {"output_tokens": 9},
                   "content": [{"type": "text", "text": "Let me check."},
                               {"type": "tool_use", "id": "t1", "name": "get_weather",
                                "input": WEATHER},
                               {"type": "tool_use", "id": "t2", "name": "now", "input": {}}]}

RESPONSES_WHOLE = {"status": "completed", "usage": {"output_tokens": 9}, "output": [
    {"type": "message", "content": [{"type": "output_text", "text": "Let me check."}]},
    {"type": "function_call", "name": "get_weather", "arguments": '{"city":"Paris","days":3}'},
    {"type": "function_call", "name": "now", "arguments": ""}]}
RESPONSES_STREAM = [
    sse({"type": "response.created", "response": {"status": "in_progress", "output": []}},
        "response.created"),
    sse({"type": "response.output_text.delta", "delta": "Let me check."},
        "response.output_text.delta"),
    sse({"type": "response.completed", "response": RESPONSES_WHOLE}, "response.completed"),
]
EXPECTED = Answer("Let me check.", None,
                  (("get_weather", '{"city":"Paris","days":3}'), ("now", "{}")), 9)


@pytest.mark.parametrize(("protocol", "stream", "whole", "finish"), [
    ("openai-chat", CHAT_STREAM, CHAT_WHOLE, "tool_calls"),
    ("anthropic-messages", ANTHROPIC_STREAM, ANTHROPIC_WHOLE, "tool_use"),
    ("openai-responses", RESPONSES_STREAM, RESPONSES_WHOLE, "completed"),
])
def test_a_stream_reassembles_into_the_whole_replys_answer(
        protocol: str, stream: list[bytes], whole: dict[str, Any], finish: str) -> None:
    expected = Answer(EXPECTED.text, finish, EXPECTED.tools, EXPECTED.output_tokens)
    assert answer_of(protocol, whole) == expected
    reader = StreamSummary(protocol)
    for chunk in stream:
        reader.feed(chunk)
    assert reader.result() == expected
    # Any split: one byte at a time, across events, lines and UTF-8 sequences alike.
    data = b"".join(stream)
    reader = StreamSummary(protocol)
    for i in range(len(data)):
        reader.feed(data[i:i + 1])
    assert reader.result() == expected


def test_the_same_call_from_different_protocols_compares_equal() -> None:
    assert summarize_stream("openai-chat", 200, 1, CHAT_STREAM).tools == \
        summarize("anthropic-messages", 200, 1, orjson.dumps(ANTHROPIC_WHOLE)).tools


@pytest.mark.parametrize(("arguments", "canonical"), [
    ('{ "b": 1,\n "a": [1, 2] }', '{"a":[1,2],"b":1}'),
    ({"b": 1, "a": [1, 2]}, '{"a":[1,2],"b":1}'),
    ("", "{}"), ("  ", "{}"), (None, "{}"), ({}, "{}"),
    ("{not json", "{not json"),  # compared as sent
])
def test_tool_arguments_are_canonical(arguments: Any, canonical: str) -> None:
    assert tool_call("f", arguments) == ("f", canonical)


@pytest.mark.parametrize(("protocol", "chunks"), [
    ("openai-chat", [CHAT_STREAM[0], sse({"error": {"message": "upstream broke"}})]),
    ("anthropic-messages", [ANTHROPIC_STREAM[0],
                            sse({"type": "error", "error": {"type": "overloaded"}}, "error")]),
    ("openai-responses", RESPONSES_STREAM[:2]),  # never completed
    ("openai-responses", [*RESPONSES_STREAM[:2], sse(
        {"type": "response.failed", "response": {"status": "failed"}}, "response.failed")]),
    ("openai-responses", [*RESPONSES_STREAM[:2], sse(
        {"type": "error", "code": "upstream_error", "message": "x"}, "error")]),
])
def test_a_broken_stream_is_a_failure_compared_as_502(protocol: str,
                                                      chunks: list[bytes]) -> None:
    reader = StreamSummary(protocol)
    for chunk in chunks:
        reader.feed(chunk)
    assert reader.result() is None
    assert summarize_stream(protocol, 200, 1.5, chunks, 0.25) == Summary(502, 1.5,
                                                                         first_chunk=0.25)


def test_non_json_and_comment_lines_are_skipped() -> None:
    chunks = [b": keep-alive\n\n", b"data: not json\n\n", *CHAT_STREAM]
    assert summarize_stream("openai-chat", 200, 1, chunks).text == "Let me check."


def test_a_v1_stream_keeps_its_status_and_timing_and_lets_its_bytes_go() -> None:
    tap = V1Stream(started=0.0, chunks=list(CHAT_STREAM), first_chunk=0.1, seconds=0.5)
    summary = tap.summary("openai-chat")
    assert (summary.status, summary.seconds, summary.first_chunk) == (200, 0.5, 0.1)
    assert summary.text == "Let me check." and summary.finish == "tool_calls"
    assert tap.chunks == []  # not held while V2 runs
    broke = V1Stream(started=0.0, chunks=list(CHAT_STREAM[:2]), status=504, seconds=0.5)
    assert broke.summary("openai-chat") == Summary(504, 0.5)
