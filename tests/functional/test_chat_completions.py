"""Chat completions through the proxy with the official openai SDK as client.

Aspects: the mock provider (stream and not), pass-through to a real upstream server (body,
credentials, model mapping, streaming chunk by chunk), and every upstream failure mode mapped
to the right status and message: 4xx pass-through, 5xx and auth failures as 502, slow
upstream as 504, a stream dropped midway as an in-band error, a client that hangs up
mid-stream cancelling the upstream request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from openai import AsyncOpenAI

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy import pipeline, route, running_proxy, write_resources
from vpipe_proxy.server import ProxyServer

SECRET = "sk-test-do-not-leak-1234567890"
MESSAGES = [{"role": "user", "content": "hello there"}]


@pytest.fixture
async def proxy(config_dir: Path, upstream_url: str) -> AsyncIterator[ProxyServer]:
    write_resources(config_dir, [
        pipeline("mock-v1", {"family": "mock"}),
        pipeline("fake-v1", {"family": "openai-compatible", "baseUrl": upstream_url,
                             "credentials": {"secretRef": {"name": "fake", "key": "token"}},
                             "modelMap": {"renamed": "upstream-name"},
                             "timeouts": {"firstByte": 0.5, "total": 5}}),
        route("mock", ["mock-*"], "mock-v1"),
        route("fake", ["*"], "fake-v1", priority=-1),
    ])
    async with running_proxy(config_dir, environ={"VPIPE_SECRET_FAKE_TOKEN": SECRET}) as server:
        yield server


@pytest.fixture
async def client(proxy: ProxyServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0) as c:
        yield c


async def test_mock_answers_deterministically(client: AsyncOpenAI) -> None:
    first = await client.chat.completions.create(model="mock-small", messages=MESSAGES)
    second = await client.chat.completions.create(model="mock-small", messages=MESSAGES)
    assert first.choices[0].message.content == "Mock reply from mock-small. You said: hello there"
    assert second.choices[0].message.content == first.choices[0].message.content
    assert first.choices[0].finish_reason == "stop"
    assert first.usage is not None and first.usage.completion_tokens == 8


async def test_mock_streams_the_same_answer(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="mock-small", messages=MESSAGES, stream=True,
        stream_options={"include_usage": True})
    parts, finish, usage = [], None, None
    async for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        usage = chunk.usage or usage
    assert "".join(parts) == "Mock reply from mock-small. You said: hello there"
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 8


async def test_upstream_gets_body_credentials_and_mapped_model(
    client: AsyncOpenAI, fake: FakeUpstream
) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="renamed", messages=MESSAGES, temperature=0.25)
    answer = raw.parse()
    assert answer.choices[0].message.content == "fake says: hello there"
    assert raw.headers["x-vpipe-route"] == "fake"
    assert raw.headers["x-vpipe-pipeline"] == "fake-v1"
    seen = fake.requests[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == f"Bearer {SECRET}"
    assert seen.body["model"] == "upstream-name"
    assert seen.body["temperature"] == 0.25


async def test_unmapped_model_is_forwarded_untouched(client: AsyncOpenAI, fake: FakeUpstream) -> None:
    await client.chat.completions.create(model="plain", messages=MESSAGES)
    assert fake.requests[-1].body == {"model": "plain", "messages": MESSAGES}


async def test_upstream_stream_passes_through(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="plain", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "fake says: hello there"


async def test_upstream_400_passes_through(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="status-400", messages=MESSAGES)
    assert caught.value.status_code == 400
    assert "fake upstream says 400" in caught.value.message


async def test_upstream_429_keeps_retry_after(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="status-429", messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == "7"


async def test_upstream_5xx_is_502_with_upstream_status(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="status-503", messages=MESSAGES)
    error = caught.value
    assert error.status_code == 502
    assert error.response.headers["x-vpipe-upstream-status"] == "503"
    assert "failed with 503" in error.message and "fake upstream says 503" in error.message
    assert "fake-v1" in error.message


async def test_upstream_plain_text_error_is_summarised(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="status-500-text", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert "upstream exploded" in caught.value.message


async def test_upstream_auth_failure_names_the_secret_not_its_value(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="status-401", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert "credentials" in caught.value.message
    assert SECRET not in caught.value.response.text


async def test_slow_upstream_is_504(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="slow-3", messages=MESSAGES)
    assert caught.value.status_code == 504
    assert "timeouts.firstByte" in caught.value.message


async def test_stream_dropped_midway_ends_with_an_error_event(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="drop-2", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["fake", " says:"]
    assert "fake-v1" in str(caught.value)


async def test_client_disconnect_cancels_upstream_stream(
    proxy: ProxyServer, client: AsyncOpenAI, fake: FakeUpstream
) -> None:
    stream = await client.chat.completions.create(model="stall-1", messages=MESSAGES, stream=True)
    first = await stream.__anext__()
    assert first.choices[0].delta.content == "fake"
    await stream.close()
    await asyncio.wait_for(fake.stream_cancelled.wait(), 5)
    assert fake.streams_cancelled == 1
    runtime = proxy.reloader.current
    assert runtime is not None
    for _ in range(100):
        if runtime.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert runtime.in_flight == 0


async def test_unreachable_upstream_is_502(config_dir: Path) -> None:
    write_resources(config_dir, [
        pipeline("gone", {"family": "openai-compatible", "baseUrl": "http://127.0.0.1:9/v1"}),
        route("gone", ["*"], "gone"),
    ])
    async with running_proxy(config_dir, warm_connections=0) as server:
        async with AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0) as c:
            with pytest.raises(openai.APIStatusError) as caught:
                await c.chat.completions.create(model="any", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert "127.0.0.1:9" in caught.value.message
