"""Anthropic Messages providers: native pass-through, and OpenAI clients served via the llmswitch.

Aspects: an Anthropic client reaches an Anthropic upstream unchanged with the key sent as
x-api-key and the family's anthropic-version header; the official openai SDK (stream and not,
with tools) is served by an Anthropic upstream with requests converted exactly (system,
max_tokens default, stop, user, tools, tool_choice, reasoning_effort) and replies converted
(tool calls, finish reasons, usage with cached tokens); Anthropic errors reach OpenAI clients in
OpenAI's shape with the same status; fields Anthropic cannot express are a 400.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import openai
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy import pipeline, route, running_proxy, write_resources
from vpipe_proxy.server import ProxyServer

KEY = "sk-ant-test-key-never-shown"
HELLO = [{"role": "user", "content": "hello"}]
TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


@pytest.fixture
async def proxy(config_dir: Path, upstream_url: str) -> AsyncIterator[ProxyServer]:
    write_resources(config_dir, [
        pipeline("claude", {"family": "anthropic", "baseUrl": upstream_url,
                            "credentials": {"secretRef": {"name": "anthropic", "key": "api-key"}},
                            "modelMap": {"claude-latest": "claude-upstream"}}),
        route("all", ["*"], "claude"),
    ])
    environ = {"VPIPE_SECRET_ANTHROPIC_API_KEY": KEY}
    async with running_proxy(config_dir, environ=environ) as server:
        yield server


@pytest.fixture
async def oai(proxy: ProxyServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0) as c:
        yield c


async def test_anthropic_client_passes_through(proxy: ProxyServer, fake: FakeUpstream) -> None:
    async with AsyncAnthropic(base_url=proxy.url, api_key="unused", max_retries=0) as client:
        message = await client.messages.create(model="claude-latest", max_tokens=20,
                                               messages=HELLO)
    assert message.content[0].type == "text"
    assert message.content[0].text == "fake says: hello"
    seen = fake.requests[-1]
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.body == {"model": "claude-upstream", "max_tokens": 20, "messages": HELLO}


async def test_openai_client_served_by_anthropic(oai: AsyncOpenAI, fake: FakeUpstream) -> None:
    answer = await oai.chat.completions.create(
        model="plain", messages=[{"role": "system", "content": "Be brief."}, *HELLO],
        stop="END", user="u-7", tools=[TOOL], tool_choice="required")
    assert answer.choices[0].message.content == "fake says: hello"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == 7
    assert answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 2
    assert fake.requests[-1].body == {
        "model": "plain", "max_tokens": 4096, "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
        "stop_sequences": ["END"], "metadata": {"user_id": "u-7"},
        "tools": [{"name": "get_weather", "description": "Weather for a city",
                   "input_schema": TOOL["function"]["parameters"]}],  # type: ignore[index]
        "tool_choice": {"type": "any"},
    }


async def test_tool_history_becomes_alternating_turns(oai: AsyncOpenAI,
                                                      fake: FakeUpstream) -> None:
    await oai.chat.completions.create(model="plain", max_tokens=100, messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Sunny"},
        {"role": "user", "content": "thanks"},
    ])
    assert fake.requests[-1].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c1",
                                           "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": "Sunny"},
            {"type": "text", "text": "thanks"}]},
    ]


async def test_tool_calls_whole_and_streamed(oai: AsyncOpenAI) -> None:
    whole = await oai.chat.completions.create(model="tools", messages=HELLO, tools=[TOOL])
    call = whole.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert call.function.arguments == '{"city":"Paris","days":3}'  # type: ignore[union-attr]
    assert whole.choices[0].finish_reason == "tool_calls"
    stream = await oai.chat.completions.create(model="tools", messages=HELLO, tools=[TOOL],
                                               stream=True,
                                               stream_options={"include_usage": True})
    text, arguments, finish, usage = "", "", None, None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for delta in choice.delta.tool_calls or []:
                arguments += (delta.function and delta.function.arguments) or ""
            finish = choice.finish_reason or finish
    assert text == "Checking."
    assert arguments == '{"city": "Paris", "days": 3}'
    assert finish == "tool_calls"
    assert usage is not None
    assert usage.completion_tokens == 4


async def test_streamed_text(oai: AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(model="plain", messages=HELLO, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "fake says: hello"


async def test_anthropic_errors_reach_openai_clients_in_openai_shape(oai: AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        await oai.chat.completions.create(model="status-429", messages=HELLO)
    assert "fake anthropic says 429" in limited.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        await oai.chat.completions.create(model="status-400", messages=HELLO)
    assert bad.value.body["type"] == "invalid_request_error"  # type: ignore[index]


async def test_inexpressible_fields_are_400(oai: AsyncOpenAI) -> None:
    for kwargs, field in (({"n": 2}, "'n'"), ({"temperature": 1.5}, "'temperature'"),
                          ({"logprobs": True}, "'logprobs'")):
        with pytest.raises(openai.BadRequestError) as caught:
            await oai.chat.completions.create(model="plain", messages=HELLO, **kwargs)
        assert field in caught.value.message


async def test_stream_cut_midway_is_an_error(oai: AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(model="drop-1", messages=HELLO, stream=True)
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass


async def test_count_tokens_passes_through(proxy: ProxyServer, fake: FakeUpstream) -> None:
    async with AsyncAnthropic(base_url=proxy.url, api_key="unused", max_retries=0) as client:
        counted = await client.messages.count_tokens(model="claude-latest", messages=HELLO)
    assert counted.input_tokens == 11
    assert fake.requests[-1].path == "/v1/messages/count_tokens"
    assert fake.requests[-1].body["model"] == "claude-upstream"


async def test_anthropic_client_sees_anthropic_errors(proxy: ProxyServer) -> None:
    async with AsyncAnthropic(base_url=proxy.url, api_key="unused", max_retries=0) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await client.messages.create(model="status-529", max_tokens=5, messages=HELLO)
    assert caught.value.status_code == 502
