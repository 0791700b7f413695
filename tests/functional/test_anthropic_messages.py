"""Anthropic Messages clients served by OpenAI-compatible providers, via the llmswitch.

Aspects, with the official anthropic SDK as client: the mock provider (stream and not); the
exact request an OpenAI upstream receives (system, multi-turn history, tool results, tools,
tool_choice, metadata, thinking); tool use streamed with argument fragments reassembled
exactly; reasoning as thinking blocks; usage with cached tokens; errors in Anthropic's shape
and status (bad input, unsupported fields, no route, upstream 429/5xx, stream cut midway).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import pytest
from anthropic import AsyncAnthropic

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy import pipeline, route, running_proxy, write_resources
from vpipe_proxy.server import ProxyServer

HELLO = [{"role": "user", "content": "hello"}]
WEATHER_TOOL = {"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


@pytest.fixture
async def proxy(config_dir: Path, upstream_url: str) -> AsyncIterator[ProxyServer]:
    write_resources(config_dir, [
        pipeline("mock-v1", {"family": "mock"}),
        pipeline("fake-v1", {"family": "openai-compatible", "baseUrl": upstream_url}),
        route("mock", ["mock-*"], "mock-v1", priority=1),
        route("fake", ["plain", "tools", "reasoning", "status-*", "drop-*"], "fake-v1",
              match={"protocols": ["anthropic-messages"]}),
    ])
    async with running_proxy(config_dir) as server:
        yield server


@pytest.fixture
async def client(proxy: ProxyServer) -> AsyncIterator[AsyncAnthropic]:
    async with AsyncAnthropic(base_url=proxy.url, api_key="unused", max_retries=0) as c:
        yield c


async def test_mock_message(client: AsyncAnthropic) -> None:
    message = await client.messages.create(model="mock-claude", max_tokens=100, messages=HELLO)
    assert message.type == "message"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Mock reply from mock-claude. You said: hello"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 7


async def test_mock_stream_matches_the_whole_answer(client: AsyncAnthropic) -> None:
    async with client.messages.stream(model="mock-claude", max_tokens=100,
                                      messages=HELLO) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == "Mock reply from mock-claude. You said: hello"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 7


async def test_max_tokens_limit_maps_to_stop_reason(client: AsyncAnthropic) -> None:
    message = await client.messages.create(model="mock-claude", max_tokens=2, messages=HELLO)
    assert message.stop_reason == "max_tokens"


async def test_request_conversion_reaches_the_upstream(
    client: AsyncAnthropic, fake: FakeUpstream
) -> None:
    await client.messages.create(
        model="plain", max_tokens=50, system="Be brief.", extra_body={"temperature": 0.5},
        stop_sequences=["END"], metadata={"user_id": "u-1"},
        tools=[WEATHER_TOOL], tool_choice={"type": "tool", "name": "get_weather"},
        thinking={"type": "enabled", "budget_tokens": 8000},
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"},
                {"type": "text", "text": "And tomorrow?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "iVBORw0KGgo="}}]},
        ])
    body = fake.requests[-1].body
    assert body["model"] == "plain"
    assert body["max_tokens"] == 50
    assert body["temperature"] == 0.5
    assert body["stop"] == ["END"]
    assert body["user"] == "u-1"
    assert body["reasoning_effort"] == "medium"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": WEATHER_TOOL["input_schema"]}}]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Sunny"},
        {"role": "user", "content": [
            {"type": "text", "text": "And tomorrow?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
    ]


async def test_tool_use_whole(client: AsyncAnthropic) -> None:
    message = await client.messages.create(model="tools", max_tokens=50, messages=HELLO,
                                           tools=[WEATHER_TOOL])
    assert [b.type for b in message.content] == ["text", "tool_use"]
    tool = message.content[1]
    assert tool.type == "tool_use"
    assert (tool.id, tool.name, tool.input) == ("call_1", "get_weather",
                                                {"city": "Paris", "days": 3})
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens == 7
    assert message.usage.cache_read_input_tokens == 4


async def test_tool_use_streamed_arguments_reassemble_exactly(client: AsyncAnthropic) -> None:
    async with client.messages.stream(model="tools", max_tokens=50, messages=HELLO,
                                      tools=[WEATHER_TOOL]) as stream:
        partials = [event.partial_json async for event in stream
                    if event.type == "input_json"]
        final = await stream.get_final_message()
    assert "".join(partials) == '{"city": "Paris", "days": 3}'
    tool = final.content[1]
    assert tool.type == "tool_use"
    assert tool.input == {"city": "Paris", "days": 3}
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 7


async def test_reasoning_becomes_thinking(client: AsyncAnthropic) -> None:
    whole = await client.messages.create(model="reasoning", max_tokens=50, messages=HELLO)
    assert [b.type for b in whole.content] == ["thinking", "text"]
    async with client.messages.stream(model="reasoning", max_tokens=50,
                                      messages=HELLO) as stream:
        final = await stream.get_final_message()
    assert final.content[0].type == "thinking"
    assert final.content[0].thinking == "Thinking."
    assert final.content[1].type == "text"
    assert final.content[1].text == "Answer."


async def test_unsupported_field_is_400_naming_it(client: AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(model="plain", max_tokens=5, messages=HELLO,
                                     extra_body={"top_k": 3})
    assert "'top_k'" in caught.value.message
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


async def test_missing_max_tokens_is_400_in_anthropic_shape(proxy: ProxyServer) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.post(
        proxy.url + "/v1/messages", json={"model": "plain", "messages": HELLO}
    ) as response:
        assert response.status == 400
        body = await response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "'max_tokens'" in body["error"]["message"]


async def test_count_tokens_needs_an_anthropic_provider(client: AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.count_tokens(model="mock-claude", messages=HELLO)
    assert "answered only by providers that speak anthropic-messages" in caught.value.message
    assert "'mock-v1' ends in a provider speaking openai-chat" in caught.value.message


async def test_no_route_is_404(client: AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        await client.messages.create(model="gpt-unknown", max_tokens=5, messages=HELLO)
    assert "gpt-unknown" in caught.value.message
    assert caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


async def test_upstream_rate_limit_and_failure(client: AsyncAnthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as limited:
        await client.messages.create(model="status-429", max_tokens=5, messages=HELLO)
    assert "fake upstream says 429" in limited.value.message
    assert limited.value.response.headers["retry-after"] == "7"
    with pytest.raises(anthropic.APIStatusError) as failed:
        await client.messages.create(model="status-503", max_tokens=5, messages=HELLO)
    assert failed.value.status_code == 502
    assert failed.value.body["error"]["type"] == "api_error"  # type: ignore[index]


async def test_stream_cut_midway_is_an_error_event(client: AsyncAnthropic,
                                                   proxy: ProxyServer) -> None:
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client.messages.stream(model="drop-2", max_tokens=50,
                                          messages=HELLO) as stream:
            async for _ in stream:
                pass
    assert "fake-v1" in caught.value.message
    metrics = proxy.metrics.exposition().decode()
    assert ('vpipe_translation_events_total{kind="stream_abort",pipeline="fake-v1",'
            'route="fake"} 1.0') in metrics


async def test_translation_health_is_counted(client: AsyncAnthropic, proxy: ProxyServer) -> None:
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.create(model="plain", max_tokens=5, messages=HELLO,
                                     extra_body={"top_k": 3})
    metrics = proxy.metrics.exposition().decode()
    assert ('vpipe_translation_events_total{kind="unmapped_field",pipeline="fake-v1",'
            'route="fake"} 1.0') in metrics
