"""Shadow mode for streaming requests: V1's stream reaches the client untouched, V2 gets the
same streaming request in the background, and both streams are reassembled and compared.

Aspects: for chat completions, Responses and Anthropic messages (official SDKs as clients) a
streamed shadow is sent and compared (status, finish reason, tool calls, similarity, output
tokens when both streams report usage); the
client's stream is the one a non-shadowed V1 gives; a V2 that pauses mid-stream does not hold
the client (the client is done while V2 is still running); a V2 error is a status mismatch and
never reaches the client; a V1 stream the client abandons is counted `incomplete`. The
reassembly itself: tests/unit/test_shadow_answer_summary.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy import pipeline, route, running_proxy, write_resources
from vpipe_proxy.server import ProxyServer


def resources(upstream_url: str, *, weight: int = 100, fake_is_v1: bool = False,
              ) -> list[dict[str, Any]]:
    mock = {"family": "mock"}
    fake = {"family": "openai-compatible", "baseUrl": upstream_url}
    v1, v2 = (fake, mock) if fake_is_v1 else (mock, fake)
    return [pipeline("v1", v1), pipeline("v2", v2),
            route("chat", ["*"], "v1", canary={"pipeline": "v2", "weight": weight,
                                                "mode": "shadow"})]


def metric(server: ProxyServer, line: str) -> bool:
    return line in server.metrics.exposition().decode()


async def until(predicate: Any, what: str, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.fixture
async def openai_client() -> AsyncIterator[Any]:
    clients: list[openai.AsyncOpenAI] = []

    def make(server: ProxyServer) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused",
                                    max_retries=0)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def chat_stream(client: openai.AsyncOpenAI, model: str, text: str = "compare me",
                      **extra: Any) -> tuple[str, list[str | None]]:
    stream = await client.chat.completions.create(
        model=model, stream=True, messages=[{"role": "user", "content": text}], **extra)
    content, finishes = [], []
    async for chunk in stream:
        for choice in chunk.choices:
            content.append(choice.delta.content or "")
            finishes.append(choice.finish_reason)
    return "".join(content), [f for f in finishes if f]


async def test_a_streamed_chat_is_shadowed_and_the_client_stream_is_v1s(
        config_dir: Path, upstream_url: str, openai_client: Any) -> None:
    write_resources(config_dir, resources(upstream_url, weight=0))
    async with running_proxy(config_dir) as server:
        plain = await chat_stream(openai_client(server), "m")
    write_resources(config_dir, resources(upstream_url))
    async with running_proxy(config_dir) as server:
        shadowed = await chat_stream(openai_client(server), "m")
        assert shadowed == plain  # the client gets V1's stream, as without a shadow
        assert shadowed[0].startswith("Mock reply")
        await until(lambda: metric(server, 'vpipe_shadow_requests_total{result="sent",'
                                           'route="chat"} 1.0'), "the shadow sent")
        text = server.metrics.exposition().decode()
        for aspect in ("status", "finish_reason", "tool_calls"):
            assert f'vpipe_shadow_match_total{{aspect="{aspect}",match="true",route="chat"}} 1.0' \
                in text
        assert 'vpipe_shadow_text_similarity_count{route="chat"} 1.0' in text
        # Different answers: V1's mock text shares no words with "fake says: ..." but both stop.
        assert 'vpipe_shadow_text_similarity_bucket{le="0.5",route="chat"} 1.0' in text
        assert "skipped_stream" not in text


async def test_a_tool_call_only_v2_makes_is_a_mismatch(
        config_dir: Path, upstream_url: str, openai_client: Any) -> None:
    write_resources(config_dir, resources(upstream_url))
    async with running_proxy(config_dir) as server:
        content, finishes = await chat_stream(openai_client(server), "tools", "weather?",
                                              stream_options={"include_usage": True})
        assert finishes == ["stop"] and content  # V1 (mock) answered with text
        await until(lambda: metric(server, 'vpipe_shadow_match_total{aspect="tool_calls",'
                                           'match="false",route="chat"} 1.0'), "the comparison")
        # Both streams carried usage: V2's output tokens over V1's.
        assert metric(server, 'vpipe_shadow_output_tokens_ratio_count{route="chat"} 1.0')
        assert metric(server, 'vpipe_shadow_match_total{aspect="finish_reason",match="false",'
                              'route="chat"} 1.0')


async def test_responses_and_anthropic_streams_are_shadowed(
        config_dir: Path, upstream_url: str, openai_client: Any) -> None:
    write_resources(config_dir, resources(upstream_url))
    async with running_proxy(config_dir) as server:
        stream = await openai_client(server).responses.create(
            model="m", input="compare me", stream=True)
        kinds = [event.type async for event in stream]
        assert kinds[-1] == "response.completed"
        client = anthropic.AsyncAnthropic(base_url=server.url, api_key="unused", max_retries=0)
        async with client.messages.stream(
                model="m", max_tokens=64,
                messages=[{"role": "user", "content": "compare me"}]) as messages:
            final = await messages.get_final_message()
        await client.close()
        assert final.content[0].type == "text" and final.content[0].text.startswith("Mock reply")
        await until(lambda: metric(server, 'vpipe_shadow_requests_total{result="sent",'
                                           'route="chat"} 2.0'), "both shadows sent")
        assert metric(server, 'vpipe_shadow_match_total{aspect="status",match="true",'
                              'route="chat"} 2.0')
        assert metric(server, 'vpipe_shadow_match_total{aspect="finish_reason",match="true",'
                              'route="chat"} 2.0')


async def test_a_pausing_v2_does_not_hold_the_client(
        config_dir: Path, upstream_url: str, openai_client: Any) -> None:
    write_resources(config_dir, resources(upstream_url))
    async with running_proxy(config_dir) as server:
        content, finishes = await chat_stream(openai_client(server), "pause-2")
        # The client has its whole stream while V2 is still paused mid-stream.
        assert finishes == ["stop"] and content.startswith("Mock reply")
        assert server.shadow.in_flight == 1
        assert not metric(server, 'vpipe_shadow_requests_total{result="sent"')
        await until(lambda: metric(server, 'vpipe_shadow_requests_total{result="sent",'
                                           'route="chat"} 1.0'), "the paused shadow to finish")


async def test_a_failing_v2_is_a_status_mismatch_and_never_reaches_the_client(
        config_dir: Path, upstream_url: str, openai_client: Any) -> None:
    write_resources(config_dir, resources(upstream_url))
    async with running_proxy(config_dir) as server:
        content, finishes = await chat_stream(openai_client(server), "status-500")
        assert content.startswith("Mock reply") and finishes == ["stop"]
        await until(lambda: metric(server, 'vpipe_shadow_match_total{aspect="status",'
                                           'match="false",route="chat"} 1.0'), "the comparison")


async def test_an_abandoned_v1_stream_is_counted_incomplete(
        config_dir: Path, fake: FakeUpstream, upstream_url: str, openai_client: Any) -> None:
    write_resources(config_dir, resources(upstream_url, fake_is_v1=True))
    async with running_proxy(config_dir) as server:
        stream = await openai_client(server).chat.completions.create(
            model="stall-1", stream=True, messages=[{"role": "user", "content": "hi"}])
        async for _ in stream:
            break  # one chunk, then the client goes away
        await stream.close()
        await until(lambda: metric(server, 'vpipe_shadow_requests_total{result="incomplete",'
                                           'route="chat"} 1.0'), "the incomplete count")
        assert server.shadow.in_flight == 0
