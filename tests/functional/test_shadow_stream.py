"""Shadow mode for streaming requests: V1's stream reaches the client untouched, V2 gets the
same streaming request in the background, and both streams are reassembled and compared.

Aspects, for chat completions, Responses and Anthropic messages (official SDKs as clients):
the client's stream is byte for byte the one the same V1 gives without a shadow, and a
streamed shadow whose V2 answers the same matches on every aspect (status, finish reason, tool
names and arguments, similarity 1, output tokens, first chunk timed); V2s that differ (text,
finish reason, tool calls, tool arguments, across protocols) are mismatches; a V2 held
mid-stream holds neither the client nor the next client, and a full shadow queue drops and
counts; a V2 error, before its headers or mid-stream, counts `failed` and a status mismatch
and never reaches the client; a V1 stream that breaks is compared with its error status; a V1
stream the client abandons is counted `incomplete` and V2 is not called. The reassembly itself:
tests/unit/test_shadow_answer_summary.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy import pipeline, route, running_proxy, write_resources
from vpipe_proxy.server import ProxyServer

ENVIRON = {"VPIPE_SECRET_KEYS_OPENAI": "sk-o", "VPIPE_SECRET_KEYS_ANTHROPIC": "sk-a"}
CHAT, RESPONSES, MESSAGES = "openai-chat", "openai-responses", "anthropic-messages"
Stream = Callable[[ProxyServer, str], Awaitable[bytes]]


def pipelines(upstream_url: str) -> list[dict[str, Any]]:
    """The fake upstream behind each protocol (its model names pick its behaviour), and mock."""
    def key(name: str) -> dict[str, Any]:
        return {"secretRef": {"name": "keys", "key": name}}

    fakes: dict[str, dict[str, Any]] = {
        "fake-chat": {"family": "openai-compatible", "baseUrl": upstream_url},
        "fake-responses": {"family": "openai", "protocol": "openai-responses",
                           "baseUrl": upstream_url, "credentials": key("openai")},
        "fake-anthropic": {"family": "anthropic", "baseUrl": upstream_url,
                           "credentials": key("anthropic")},
    }
    # "<fake>-twin": the same upstream under another name, for a V2 that answers as V1 does.
    return [pipeline("mock", {"family": "mock"}),
            *(pipeline(name + suffix, provider) for name, provider in fakes.items()
              for suffix in ("", "-twin"))]


def shadowing(config_dir: Path, upstream_url: str, v1: str, v2: str, weight: int = 100,
              *protocols: str) -> None:
    """Route `r`: requests of `protocols` (chat) answered by `v1`, a shadow copy to `v2`."""
    write_resources(config_dir, [*pipelines(upstream_url), route(
        "r", ["*"], v1, match={"protocols": list(protocols or [CHAT])},
        canary={"pipeline": v2, "weight": weight, "mode": "shadow"})])


def proxy(config_dir: Path, **settings: Any) -> Any:
    return running_proxy(config_dir, environ=ENVIRON, **settings)


def exposition(server: ProxyServer) -> str:
    return server.metrics.exposition().decode()


def count(server: ProxyServer, name: str, **labels: str) -> float:
    """The sample of `name` with exactly these labels (sorted, as Prometheus writes them), or 0."""
    wanted = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "} "
    for line in exposition(server).splitlines():
        if line.startswith(wanted):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def aspects(server: ProxyServer) -> dict[str, bool]:
    """Each compared aspect -> whether V2 matched (the route saw one comparison)."""
    out = {}
    for aspect in ("status", "finish_reason", "tool_calls", "tool_arguments"):
        matched = count(server, "vpipe_shadow_match_total", aspect=aspect, match="true",
                        route="r")
        missed = count(server, "vpipe_shadow_match_total", aspect=aspect, match="false",
                       route="r")
        assert matched + missed == 1, f"{aspect}: {matched} matched, {missed} missed"
        out[aspect] = matched == 1
    return out


async def until(predicate: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def compared(server: ProxyServer, n: int = 1) -> None:
    """Wait until `n` shadow copies finished (sent or failed), and no more run."""
    def done() -> bool:
        return sum(count(server, "vpipe_shadow_requests_total", result=result, route="r")
                   for result in ("sent", "failed")) >= n and server.shadow.in_flight == 0

    await until(done, f"{n} shadow comparison(s)")


def chat_text(body: bytes) -> str:
    """The answer text of a chat completions stream's bytes."""
    return "".join(
        choice["delta"].get("content") or "" for line in body.splitlines()
        if line.startswith(b"data: {") for choice in orjson.loads(line[6:]).get("choices", []))


async def chat_bytes(server: ProxyServer, model: str) -> bytes:
    async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused",
                                  max_retries=0) as client:
        async with client.chat.completions.with_streaming_response.create(
                model=model, stream=True,
                messages=[{"role": "user", "content": "weather in Paris?"}]) as response:
            return b"".join([chunk async for chunk in response.iter_bytes()])


async def responses_bytes(server: ProxyServer, model: str) -> bytes:
    async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused",
                                  max_retries=0) as client:
        async with client.responses.with_streaming_response.create(
                model=model, stream=True, input="weather in Paris?") as response:
            return b"".join([chunk async for chunk in response.iter_bytes()])


async def messages_bytes(server: ProxyServer, model: str) -> bytes:
    async with anthropic.AsyncAnthropic(base_url=server.url, api_key="unused",
                                        max_retries=0) as client:
        async with client.messages.with_streaming_response.create(
                model=model, max_tokens=64, stream=True,
                messages=[{"role": "user", "content": "weather in Paris?"}]) as response:
            return b"".join([chunk async for chunk in response.iter_bytes()])


STREAMS: dict[str, Stream] = {CHAT: chat_bytes, RESPONSES: responses_bytes,
                              MESSAGES: messages_bytes}
NATIVE = {CHAT: "fake-chat", RESPONSES: "fake-responses", MESSAGES: "fake-anthropic"}


@pytest.mark.parametrize("model", ["m", "tools"])
@pytest.mark.parametrize("protocol", [CHAT, RESPONSES, MESSAGES])
async def test_the_client_gets_v1s_stream_byte_for_byte_and_an_equal_v2_matches(
        config_dir: Path, upstream_url: str, fake: FakeUpstream, protocol: str,
        model: str) -> None:
    v1 = NATIVE[protocol]
    shadowing(config_dir, upstream_url, v1, v1 + "-twin", 0, protocol)
    async with proxy(config_dir) as server:
        plain = await STREAMS[protocol](server, model)
    shadowing(config_dir, upstream_url, v1, v1 + "-twin", 100, protocol)
    async with proxy(config_dir) as server:
        shadowed = await STREAMS[protocol](server, model)
        assert shadowed == plain
        await compared(server)
        assert count(server, "vpipe_shadow_requests_total", result="sent", route="r") == 1
        assert aspects(server) == {"status": True, "finish_reason": True, "tool_calls": True,
                                   "tool_arguments": True}
        text = exposition(server)
        assert 'vpipe_shadow_text_similarity_bucket{le="0.99",route="r"} 0.0' in text
        assert 'vpipe_shadow_text_similarity_bucket{le="1.0",route="r"} 1.0' in text
        if (protocol, model) != (CHAT, "m"):  # the fake's plain chat stream has no usage
            assert 'vpipe_shadow_output_tokens_ratio_bucket{le="1.05",route="r"} 1.0' in text
            assert 'vpipe_shadow_output_tokens_ratio_bucket{le="0.95",route="r"} 0.0' in text
        assert 'vpipe_shadow_first_chunk_delta_seconds_count{route="r"} 1.0' in text
        assert "skipped_stream" not in text
    # Two streaming requests reached the upstream: V1's and the shadow's copy.
    assert [seen.body.get("stream") for seen in fake.requests] == [True, True, True]


@pytest.mark.parametrize(("protocol", "v1", "v2", "model", "expected"), [
    # Text only (V1 fake, V2 mock): the same finish, different words.
    (CHAT, "fake-chat", "mock", "m",
     {"status": True, "finish_reason": True, "tool_calls": True, "tool_arguments": True}),
    # V1 calls a tool, V2 (mock) answers in text: finish reason and tool calls differ.
    (CHAT, "fake-chat", "mock", "tools",
     {"status": True, "finish_reason": False, "tool_calls": False, "tool_arguments": False}),
    # The same tool, other arguments (Responses' fake asks for Oslo, chat's for Paris).
    (CHAT, "fake-chat", "fake-responses", "tools",
     {"status": True, "finish_reason": True, "tool_calls": True, "tool_arguments": False}),
    (RESPONSES, "fake-responses", "fake-chat", "tools",
     {"status": True, "finish_reason": True, "tool_calls": True, "tool_arguments": False}),
    (RESPONSES, "fake-responses", "mock", "tools",
     {"status": True, "finish_reason": True, "tool_calls": False, "tool_arguments": False}),
    # Across protocols, the same call (Anthropic's input object, chat's fragments) is equal.
    (MESSAGES, "fake-anthropic", "fake-chat", "tools",
     {"status": True, "finish_reason": True, "tool_calls": True, "tool_arguments": True}),
    (MESSAGES, "fake-anthropic", "mock", "tools",
     {"status": True, "finish_reason": False, "tool_calls": False, "tool_arguments": False}),
])
async def test_a_different_v2_is_a_mismatch_on_what_differs(
        config_dir: Path, upstream_url: str, protocol: str, v1: str, v2: str, model: str,
        expected: dict[str, bool]) -> None:
    shadowing(config_dir, upstream_url, v1, v2, 0, protocol)
    async with proxy(config_dir) as server:
        plain = await STREAMS[protocol](server, model)
    shadowing(config_dir, upstream_url, v1, v2, 100, protocol)
    async with proxy(config_dir) as server:
        assert await STREAMS[protocol](server, model) == plain
        await compared(server)
        assert aspects(server) == expected
        # The texts differ in every case: V1's fake and V2 never say the same words.
        assert 'vpipe_shadow_text_similarity_bucket{le="0.5",route="r"} 1.0' in exposition(server)


async def test_a_held_v2_holds_neither_the_client_nor_the_next_and_a_full_queue_drops(
        config_dir: Path, upstream_url: str, fake: FakeUpstream) -> None:
    shadowing(config_dir, upstream_url, "mock", "fake-chat")
    async with proxy(config_dir, shadow_concurrency=1) as server:
        first = await chat_bytes(server, "hold")
        assert chat_text(first).startswith("Mock reply") and first.endswith(b"data: [DONE]\n\n")
        await asyncio.wait_for(fake.holding.wait(), 10)  # V2 streamed, now held before its end
        # While V2 holds the only shadow slot, the next client streams to its end and its copy
        # is dropped, not queued.
        second = await chat_bytes(server, "hold")
        assert chat_text(second).startswith("Mock reply")
        assert second.endswith(b"data: [DONE]\n\n")
        assert count(server, "vpipe_shadow_requests_total", result="dropped", route="r") == 1
        assert server.shadow.in_flight == 1
        assert "vpipe_shadow_match_total{" not in exposition(server)  # nothing compared yet
        fake.release.set()
        await compared(server)
        assert count(server, "vpipe_shadow_requests_total", result="sent", route="r") == 1
        assert b"fake says" not in first + second


@pytest.mark.parametrize("model", ["status-500", "drop-1"])  # before its headers, mid-stream
async def test_a_failing_v2_counts_failed_and_never_reaches_the_client(
        config_dir: Path, upstream_url: str, model: str) -> None:
    shadowing(config_dir, upstream_url, "mock", "fake-chat")
    async with proxy(config_dir) as server:
        body = await chat_bytes(server, model)
        assert chat_text(body).startswith("Mock reply") and body.endswith(b"data: [DONE]\n\n")
        assert b"fake" not in body and b"error" not in body
        await compared(server)
        assert count(server, "vpipe_shadow_requests_total", result="failed", route="r") == 1
        assert count(server, "vpipe_shadow_requests_total", result="sent", route="r") == 0
        assert aspects(server)["status"] is False


async def test_a_broken_v1_stream_is_compared_with_its_error_status(
        config_dir: Path, upstream_url: str) -> None:
    shadowing(config_dir, upstream_url, "fake-chat", "mock")
    async with proxy(config_dir) as server:
        body = await chat_bytes(server, "drop-1")
        assert b'"error"' in body  # the client was told in-band, as without a shadow
        await compared(server)
        assert count(server, "vpipe_shadow_requests_total", result="sent", route="r") == 1
        assert aspects(server)["status"] is False


async def test_an_abandoned_v1_stream_is_counted_incomplete(
        config_dir: Path, fake: FakeUpstream, upstream_url: str) -> None:
    shadowing(config_dir, upstream_url, "fake-chat", "mock")
    async with proxy(config_dir) as server, openai.AsyncOpenAI(
            base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="stall-1", stream=True, messages=[{"role": "user", "content": "hi"}])
        async for _ in stream:
            break  # one chunk, then the client goes away
        await stream.close()
        await until(lambda: count(server, "vpipe_shadow_requests_total", result="incomplete",
                                  route="r") == 1, "the incomplete count")
        assert server.shadow.in_flight == 0
        assert "vpipe_shadow_match_total{" not in exposition(server)


@pytest.fixture
async def openai_stream(config_dir: Path, upstream_url: str) -> AsyncIterator[ProxyServer]:
    shadowing(config_dir, upstream_url, "mock", "fake-chat", 100, CHAT, MESSAGES)
    async with proxy(config_dir) as server:
        yield server


async def test_sdk_stream_helpers_see_v1s_answer(openai_stream: ProxyServer) -> None:
    """The parsed view too: the SDK's stream events carry V1's text and finish, not V2's."""
    async with openai.AsyncOpenAI(base_url=openai_stream.url + "/v1", api_key="unused",
                                  max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="m", stream=True, messages=[{"role": "user", "content": "compare me"}])
        text, finishes = [], []
        async for chunk in stream:
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                finishes.append(choice.finish_reason)
    assert "".join(text).startswith("Mock reply") and [f for f in finishes if f] == ["stop"]
    async with anthropic.AsyncAnthropic(base_url=openai_stream.url, api_key="unused",
                                        max_retries=0) as client:
        async with client.messages.stream(
                model="m", max_tokens=64,
                messages=[{"role": "user", "content": "compare me"}]) as messages:
            final = await messages.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text.startswith("Mock reply")
    await until(lambda: count(openai_stream, "vpipe_shadow_requests_total", result="sent",
                              route="r") == 2, "both shadows sent")
