"""OpenAI Chat -> Anthropic Messages conversion, whole and streamed.

Aspects: inexpressible fields are a 400 naming them; reasoning_effort becomes a thinking budget
that must fit under max_tokens; data-URL images become base64 sources; replies map stop
reasons, thinking and usage; the stream converter gives the same chunks for every byte split,
numbers tool calls in order, and fails cleanly on a stream cut short or an error event.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from vpipe_proxy.errors import ProxyError
from vpipe_proxy.llmswitch.openai_anthropic import request_to_anthropic, response_to_openai
from vpipe_proxy.llmswitch.openai_anthropic_stream import AnthropicToOpenAIStream
from vpipe_proxy.sse import SSEDecoder

BASE: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(("extra", "param"), [
    ({"n": 3}, "n"), ({"logprobs": True}, "logprobs"), ({"presence_penalty": 0.5},
                                                        "presence_penalty"),
    ({"temperature": 1.2}, "temperature"), ({"logit_bias": {"1": 2}}, "logit_bias"),
    ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
     "messages[0].content[0]"),
])
def test_inexpressible_fields(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(ProxyError) as caught:
        request_to_anthropic({**BASE, **extra})
    assert caught.value.status == 400
    assert caught.value.param == param


def test_reasoning_effort_budget_must_fit() -> None:
    out = request_to_anthropic({**BASE, "reasoning_effort": "low", "max_tokens": 5000})
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    with pytest.raises(ProxyError, match="raise max_tokens"):
        request_to_anthropic({**BASE, "reasoning_effort": "high", "max_tokens": 1000})


def test_data_url_image_and_developer_message() -> None:
    out = request_to_anthropic({"model": "m", "messages": [
        {"role": "developer", "content": [{"type": "text", "text": "rules"}]},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}]}]})
    assert out["system"] == "rules"
    assert out["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                     "data": "AAAA"}}]


def test_bad_tool_call_arguments_in_history_are_400() -> None:
    with pytest.raises(ProxyError) as caught:
        request_to_anthropic({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "function": {"name": "f", "arguments": "{nope"}}]}]})
    assert caught.value.param == "messages[0].tool_calls[0].function.arguments"


def test_reply_mapping() -> None:
    out = response_to_openai({
        "id": "msg_9", "model": "claude", "stop_reason": "max_tokens",
        "content": [{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "a"},
                    {"type": "text", "text": "b"}],
        "usage": {"input_tokens": 3, "output_tokens": 2, "cache_read_input_tokens": 4,
                  "cache_creation_input_tokens": 1}}, "m")
    assert out["id"] == "chatcmpl-9"
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["choices"][0]["message"]["content"] == "ab"
    assert out["choices"][0]["message"]["reasoning_content"] == "hm"
    assert out["usage"] == {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10,
                            "prompt_tokens_details": {"cached_tokens": 4}}


def event(kind: str, **data: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


STREAM = b"".join([
    event("message_start", message={"id": "msg_1", "model": "claude",
                                    "usage": {"input_tokens": 3}}),
    event("ping"),
    event("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
    event("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "hm"}),
    event("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "s"}),
    event("content_block_stop", index=0),
    event("content_block_start", index=1, content_block={"type": "tool_use", "id": "t1",
                                                          "name": "f", "input": {}}),
    event("content_block_delta", index=1, delta={"type": "input_json_delta",
                                                 "partial_json": '{"a"'}),
    event("content_block_delta", index=1, delta={"type": "input_json_delta",
                                                 "partial_json": ": 1}"}),
    event("content_block_stop", index=1),
    event("message_delta", delta={"stop_reason": "tool_use"}, usage={"output_tokens": 6}),
    event("message_stop"),
])


def convert(chunks: list[bytes]) -> list[Any]:
    converter = AnthropicToOpenAIStream("m", include_usage=True)
    out = b"".join(converter.feed(c) for c in chunks) + converter.finish()
    chunks = [e.data if e.data == "[DONE]" else orjson.loads(e.data)
              for e in SSEDecoder().feed(out)]
    for chunk in chunks[:-1]:
        chunk.pop("created")  # wall-clock seconds: differs between runs at a second boundary
    return chunks


def test_stream_chunks() -> None:
    chunks = convert([STREAM])
    assert chunks[-1] == "[DONE]"
    deltas = [c["choices"][0]["delta"] for c in chunks[:-2]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"reasoning_content": "hm"}
    assert deltas[2]["tool_calls"][0] == {"index": 0, "id": "t1", "type": "function",
                                          "function": {"name": "f", "arguments": ""}}
    assert "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[3:5]) == '{"a": 1}'
    assert chunks[-3]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-2]["usage"]["completion_tokens"] == 6
    assert chunks[0]["id"] == "chatcmpl-1"


@pytest.mark.parametrize("cut", range(0, len(STREAM) + 1, 11))
def test_stream_same_for_every_split(cut: int) -> None:
    assert convert([STREAM[:cut], STREAM[cut:]])[:-1] == convert([STREAM])[:-1]


def test_stream_cut_short_is_502() -> None:
    converter = AnthropicToOpenAIStream("m", include_usage=False)
    converter.feed(STREAM[: len(STREAM) // 2])
    with pytest.raises(ProxyError) as caught:
        converter.finish()
    assert caught.value.status == 502


def test_error_event_is_reported() -> None:
    with pytest.raises(ProxyError, match="overloaded"):
        AnthropicToOpenAIStream("m", include_usage=False).feed(
            event("error", error={"type": "overloaded_error", "message": "overloaded"}))
