"""The sans-IO pieces of streaming conversion, fed every possible byte split.

Aspects: the SSE decoder yields the same events however the bytes are cut (LF, CRLF, CR line
ends, comments, multi-line data, a last event without its blank line); the OpenAI -> Anthropic
stream converter produces the same event sequence for every split, reassembles tool-call
argument fragments exactly, and fails cleanly on a stream cut short or a non-JSON event.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from vpipe_proxy.errors import ProxyError
from vpipe_proxy.llmswitch.anthropic_openai_stream import OpenAIToAnthropicStream
from vpipe_proxy.sse import Event, SSEDecoder

RAW = (b": comment\r\nevent: a\r\ndata: one\r\n\r\n"
       b"data: two\ndata: lines\n\n"
       b"data: three\r\rdata: last")
EXPECTED = [Event("a", "one"), Event(None, "two\nlines"), Event(None, "three"),
            Event(None, "last")]


def decode(chunks: list[bytes]) -> list[Event]:
    decoder = SSEDecoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    return events + decoder.flush()


@pytest.mark.parametrize("cut", range(len(RAW) + 1))
def test_decoder_any_two_way_split(cut: int) -> None:
    assert decode([RAW[:cut], RAW[cut:]]) == EXPECTED


def test_decoder_byte_by_byte() -> None:
    assert decode([bytes([b]) for b in RAW]) == EXPECTED


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    data = {"id": "chatcmpl-x", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return b"data: " + orjson.dumps(data) + b"\n\n"


STREAM = b"".join([
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hi"}),
    chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                           "function": {"name": "f", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": '}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"\\u00e9"}'}}]}),
    chunk({}, "tool_calls"),
    b'data: {"id":"chatcmpl-x","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n',
    b"data: [DONE]\n\n",
])


def convert(chunks: list[bytes]) -> list[dict[str, Any]]:
    converter = OpenAIToAnthropicStream("m")
    out = b"".join(converter.feed(c) for c in chunks) + converter.finish()
    return [orjson.loads(e.data) for e in SSEDecoder().feed(out)]


def test_converter_event_sequence() -> None:
    events = convert([STREAM])
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]
    assert events[0]["message"]["id"] == "msg_x"
    assert events[4]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "f",
                                          "input": {}}
    arguments = "".join(e["delta"]["partial_json"] for e in events
                        if e["type"] == "content_block_delta"
                        and e["delta"]["type"] == "input_json_delta")
    assert orjson.loads(arguments) == {"a": "é"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"]["output_tokens"] == 2


@pytest.mark.parametrize("cut", range(0, len(STREAM) + 1, 7))
def test_converter_same_for_every_split(cut: int) -> None:
    assert convert([STREAM[:cut], STREAM[cut:]]) == convert([STREAM])


def test_converter_byte_by_byte() -> None:
    assert convert([bytes([b]) for b in STREAM]) == convert([STREAM])


def test_stream_cut_short_is_an_error() -> None:
    converter = OpenAIToAnthropicStream("m")
    converter.feed(chunk({"content": "partial"}))
    with pytest.raises(ProxyError) as caught:
        converter.finish()
    assert caught.value.status == 502
    assert "ended before it finished" in caught.value.message


def test_finish_reason_without_done_still_closes() -> None:
    events = convert([chunk({"content": "ok"}), chunk({}, "stop")])
    assert events[-1]["type"] == "message_stop"
    assert events[-2]["delta"]["stop_reason"] == "end_turn"


def test_non_json_event_is_a_clean_error() -> None:
    with pytest.raises(ProxyError, match="not JSON"):
        OpenAIToAnthropicStream("m").feed(b"data: {oops\n\n")


def test_upstream_error_event_is_reported() -> None:
    with pytest.raises(ProxyError, match="failed mid-stream: boom"):
        OpenAIToAnthropicStream("m").feed(b'data: {"error": {"message": "boom"}}\n\n')
