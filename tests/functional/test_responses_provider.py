"""Providers that speak the OpenAI Responses API.

Aspects: Responses clients pass through unchanged; Chat Completions clients (openai SDK) are
served via the llmswitch, whole and streamed, with function calls and usage converted; Anthropic
clients reach it in two steps; chat fields the Responses API lacks are a 400.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy import pipeline, route, running_proxy, write_resources
from vpipe_proxy.server import ProxyServer

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def proxy(config_dir: Path, upstream_url: str) -> AsyncIterator[ProxyServer]:
    write_resources(config_dir, [
        pipeline("resp", {"family": "openai", "protocol": "openai-responses",
                          "baseUrl": upstream_url,
                          "credentials": {"secretRef": {"name": "o", "key": "k"}}}),
        route("all", ["*"], "resp"),
    ])
    async with running_proxy(config_dir, environ={"VPIPE_SECRET_O_K": "sk-o"}) as server:
        yield server


@pytest.fixture
async def client(proxy: ProxyServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0) as c:
        yield c


async def test_responses_client_passes_through(client: AsyncOpenAI, fake: FakeUpstream) -> None:
    response = await client.responses.create(model="plain", input="hello")
    assert response.output_text == "fake says: hello"
    assert fake.requests[-1].body == {"model": "plain", "input": "hello"}
    assert fake.requests[-1].headers["Authorization"] == "Bearer sk-o"


async def test_chat_client_whole(client: AsyncOpenAI, fake: FakeUpstream) -> None:
    answer = await client.chat.completions.create(
        model="tools", messages=[{"role": "system", "content": "Brief."}, *HELLO],
        max_tokens=20, tools=[{"type": "function", "function": {
            "name": "get_weather", "parameters": {"type": "object"}}}])
    message = answer.choices[0].message
    assert message.content == "fake says: hello"
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.arguments == '{"city": "Oslo"}'  # type: ignore[union-attr]
    assert answer.choices[0].finish_reason == "tool_calls"
    assert answer.usage is not None and answer.usage.prompt_tokens == 6
    body = fake.requests[-1].body
    assert body["input"] == [{"role": "system", "content": "Brief."},
                             {"role": "user", "content": "hello"}]
    assert body["max_output_tokens"] == 20
    assert body["store"] is False
    assert body["tools"] == [{"type": "function", "name": "get_weather",
                              "parameters": {"type": "object"}}]


async def test_chat_client_streamed(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="tools", messages=HELLO, stream=True,
                                                  stream_options={"include_usage": True})
    text, arguments, finish, usage = "", "", None, None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                arguments += (call.function and call.function.arguments) or ""
            finish = choice.finish_reason or finish
    assert text == "fake says: hello "
    assert arguments == '{"city": "Oslo"}'
    assert finish == "tool_calls"
    assert usage is not None and usage.completion_tokens == 3


async def test_anthropic_client_in_two_steps(proxy: ProxyServer) -> None:
    async with AsyncAnthropic(base_url=proxy.url, api_key="x", max_retries=0) as client:
        message = await client.messages.create(model="plain", max_tokens=20, messages=HELLO)
    assert message.content[0].type == "text"
    assert message.content[0].text == "fake says: hello"


async def test_chat_fields_without_a_place_are_400(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="plain", messages=HELLO, stop=["x"])
    assert caught.value.body["param"] == "stop"  # type: ignore[index]
