"""OpenAI Responses clients served by chat-completions and Anthropic providers.

Aspects, with the official openai SDK (`client.responses`) as client: the mock provider, whole
and streamed (the streamed events rebuild the same text and end with response.completed); the
exact chat request an OpenAI-compatible upstream receives (instructions, input items, function
call history, tools, text.format, reasoning effort); function calls whole and streamed with
argument deltas reassembled; reasoning as a reasoning item; the two-step path to an Anthropic
upstream; state the proxy cannot keep (previous_response_id, store), background and custom
tools are 400s (built-in tools are dropped: test_field_policy_e2e.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy import pipeline, route, running_proxy, write_resources
from vpipe_proxy.server import ProxyServer

TOOL: dict[str, Any] = {"type": "function", "name": "get_weather", "description": "Weather",
                        "parameters": {"type": "object",
                                       "properties": {"city": {"type": "string"}}}}


@pytest.fixture
async def proxy(config_dir: Path, upstream_url: str) -> AsyncIterator[ProxyServer]:
    write_resources(config_dir, [
        pipeline("mock", {"family": "mock"}),
        pipeline("chat", {"family": "openai-compatible", "baseUrl": upstream_url}),
        pipeline("claude", {"family": "anthropic", "baseUrl": upstream_url,
                            "credentials": {"secretRef": {"name": "a", "key": "k"}}}),
        route("mock", ["mock-*"], "mock", priority=2),
        route("claude", ["claude-*"], "claude", priority=1),
        route("chat", ["*"], "chat"),
    ])
    async with running_proxy(config_dir, environ={"VPIPE_SECRET_A_K": "sk-a"}) as server:
        yield server


@pytest.fixture
async def client(proxy: ProxyServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0) as c:
        yield c


async def test_mock_whole_and_streamed(client: AsyncOpenAI) -> None:
    whole = await client.responses.create(model="mock-a", input="hello")
    assert whole.status == "completed"
    assert whole.output_text == "Mock reply from mock-a. You said: hello"
    assert whole.usage is not None and whole.usage.output_tokens == 7
    stream = await client.responses.create(model="mock-a", input="hello", stream=True)
    kinds, text, final = [], "", None
    async for event in stream:
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            text += event.delta
        if event.type == "response.completed":
            final = event.response
    assert text == whole.output_text
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert final is not None and final.output_text == whole.output_text


async def test_request_reaches_chat_upstream(client: AsyncOpenAI, fake: FakeUpstream) -> None:
    await client.responses.create(
        model="plain", instructions="Be brief.", max_output_tokens=50, temperature=0.3,
        tools=[TOOL], tool_choice={"type": "function", "name": "get_weather"},  # type: ignore[list-item]
        reasoning={"effort": "low"}, text={"format": {"type": "json_object"}},
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            {"type": "function_call", "call_id": "c1", "name": "get_weather",
             "arguments": '{"city": "Paris"}'},
            {"type": "function_call_output", "call_id": "c1", "output": "Sunny"},
            {"role": "user", "content": "thanks"},
        ])
    body = fake.requests[-1].body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Sunny"},
        {"role": "user", "content": "thanks"},
    ]
    assert body["max_tokens"] == 50
    assert body["temperature"] == 0.3
    assert body["reasoning_effort"] == "low"
    assert body["response_format"] == {"type": "json_object"}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["tools"][0]["function"]["name"] == "get_weather"


async def test_function_calls_whole_and_streamed(client: AsyncOpenAI) -> None:
    whole = await client.responses.create(model="tools", input="hi", tools=[TOOL])  # type: ignore[list-item]
    calls = [item for item in whole.output if item.type == "function_call"]
    assert [(c.name, c.call_id, c.arguments) for c in calls] == [
        ("get_weather", "call_1", '{"city": "Paris", "days": 3}')]
    stream = await client.responses.create(model="tools", input="hi", tools=[TOOL],  # type: ignore[list-item]
                                           stream=True)
    deltas, done, final = "", None, None
    async for event in stream:
        if event.type == "response.function_call_arguments.delta":
            deltas += event.delta
        elif event.type == "response.function_call_arguments.done":
            done = event.arguments
        elif event.type == "response.completed":
            final = event.response
    assert deltas == done == '{"city": "Paris", "days": 3}'
    assert final is not None
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.usage is not None and final.usage.input_tokens_details.cached_tokens == 4


async def test_reasoning_becomes_a_reasoning_item(client: AsyncOpenAI) -> None:
    whole = await client.responses.create(model="reasoning", input="hi")
    assert [item.type for item in whole.output] == ["reasoning", "message"]
    reasoning = whole.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.summary[0].text == "Thinking."


async def test_two_steps_to_anthropic(client: AsyncOpenAI, fake: FakeUpstream) -> None:
    whole = await client.responses.create(model="claude-x", input="hello")
    assert whole.output_text == "fake says: hello"
    assert fake.requests[-1].path == "/v1/messages"
    stream = await client.responses.create(model="claude-x", input="hello", stream=True)
    text = ""
    async for event in stream:
        if event.type == "response.output_text.delta":
            text += event.delta
    assert text == "fake says: hello"


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ({"store": True}, "store"),
    ({"tools": [{"type": "custom", "name": "grammar"}]}, "tools[0]"),
    ({"background": True}, "background"),
])
async def test_what_cannot_be_served_is_400(client: AsyncOpenAI, kwargs: dict[str, Any],
                                            param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="plain", input="hi", **kwargs)
    assert caught.value.body["param"] == param  # type: ignore[index]


async def test_stream_cut_midway_is_an_error_event(client: AsyncOpenAI) -> None:
    stream = await client.responses.create(model="drop-2", input="hi", stream=True)
    kinds = [event.type async for event in stream]
    assert kinds[-1] == "error"
    assert "response.completed" not in kinds
