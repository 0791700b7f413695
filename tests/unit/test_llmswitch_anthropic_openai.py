"""Anthropic Messages <-> OpenAI Chat conversion of whole requests and replies.

Aspects: fields the field policy refuses fail with a 400 naming the field, hints and server
tools are dropped and named (see also test_field_policy.py);
system blocks, tool_choice variants, thinking budgets and image URLs convert as documented;
replies map finish reasons, tool calls, reasoning and cached-token usage; tool arguments that
are not JSON are a 502 naming the tool.
"""

from __future__ import annotations

from typing import Any

import pytest

from vpipe_proxy.errors import ProxyError
from vpipe_proxy.llmswitch.anthropic_openai import request_to_openai, response_to_anthropic

BASE: dict[str, Any] = {"model": "m", "max_tokens": 10,
                        "messages": [{"role": "user", "content": "hi"}]}


def convert(**extra: Any) -> dict[str, Any]:
    return request_to_openai({**BASE, **extra})


@pytest.mark.parametrize(("extra", "param"), [
    ({"top_k": 5}, "top_k"),
    ({"container": "c1"}, "container"),
    ({"inference_geo": "eu"}, "inference_geo"),
    ({"future_field": 1}, "future_field"),
    ({"messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "data": "x"}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t",
         "content": [{"type": "image", "source": {}}]}]}]},
     "messages[0].content[0].content[0]"),
])
def test_inexpressible_fields_are_400_naming_them(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(ProxyError) as caught:
        convert(**extra)
    assert caught.value.status == 400
    assert caught.value.param == param
    assert f"'{param}'" in caught.value.message


def test_system_blocks_join() -> None:
    out = convert(system=[{"type": "text", "text": "a"}, {"type": "text", "text": "b",
                                                          "cache_control": {"type": "ephemeral"}}])
    assert out["messages"][0] == {"role": "system", "content": "a\n\nb"}


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, "auto"),
    ({"type": "any"}, "required"),
    ({"type": "none"}, "none"),
    ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
])
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    assert convert(tool_choice=choice)["tool_choice"] == expected


def test_parallel_tool_use_can_be_disabled() -> None:
    out = convert(tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    assert out["parallel_tool_calls"] is False


@pytest.mark.parametrize(("budget", "effort"), [(1024, "low"), (8000, "medium"), (32000, "high")])
def test_thinking_budget_becomes_effort(budget: int, effort: str) -> None:
    assert convert(thinking={"type": "enabled", "budget_tokens": budget})["reasoning_effort"] == effort


def test_disabled_thinking_sends_nothing() -> None:
    assert "reasoning_effort" not in convert(thinking={"type": "disabled"})


def test_image_url_source() -> None:
    out = convert(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}])
    assert out["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]


def test_stream_asks_for_usage() -> None:
    assert convert(stream=True)["stream_options"] == {"include_usage": True}


def reply(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {"id": "chatcmpl-1", "model": "up", "choices": [
        {"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3,
                  "prompt_tokens_details": {"cached_tokens": 2}}}


@pytest.mark.parametrize(("finish", "stop"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"),
    ("content_filter", "refusal"),
])
def test_finish_reasons(finish: str, stop: str) -> None:
    out = response_to_anthropic(reply({"content": "x"}, finish), "m")
    assert out["stop_reason"] == stop


def test_reply_with_reasoning_tools_and_usage() -> None:
    out = response_to_anthropic(reply({
        "content": "ok", "reasoning_content": "hmm",
        "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"x": 1}'}}]},
        "tool_calls"), "m")
    assert out["id"] == "msg_1"
    assert out["model"] == "up"
    assert out["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": ""},
        {"type": "text", "text": "ok"},
        {"type": "tool_use", "id": "c1", "name": "f", "input": {"x": 1}},
    ]
    assert out["usage"] == {"input_tokens": 7, "output_tokens": 3,
                            "cache_read_input_tokens": 2, "cache_creation_input_tokens": 0}


def test_tool_arguments_that_are_not_json_are_502() -> None:
    with pytest.raises(ProxyError) as caught:
        response_to_anthropic(reply({"tool_calls": [
            {"id": "c1", "function": {"name": "lookup", "arguments": "{broken"}}]}), "m")
    assert caught.value.status == 502
    assert "'lookup'" in caught.value.message


def test_reply_without_choices_is_502() -> None:
    with pytest.raises(ProxyError) as caught:
        response_to_anthropic({"id": "x", "choices": []}, "m")
    assert caught.value.status == 502
