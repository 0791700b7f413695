"""Fault tests: slow and greedy clients, an upstream that echoes keys, a 200 MB reply, an
oversized event, bytes a client must not be able to blame on the upstream."""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anthropic
import openai
import orjson
import pytest
from openai import AsyncOpenAI

from tests.support.hostile import CLIENT_KEY, PROVIDER_KEY, gateway_resources
from tests.support.proxy import running_proxy, running_upstream, write_resources
from tests.support.scripted_upstream import Script, ScriptedUpstream
from vpipe_proxy.modules import Health
from vpipe_proxy.server import ProxyServer

HELLO = [{"role": "user", "content": "hello"}]
MB = 1024 * 1024


@pytest.fixture
def upstream() -> ScriptedUpstream:
    return ScriptedUpstream()


@pytest.fixture
async def proxy(config_dir: Path, upstream: ScriptedUpstream) -> AsyncIterator[ProxyServer]:
    async with running_upstream(upstream) as url:
        write_resources(config_dir, gateway_resources(url))
        async with running_proxy(config_dir, environ={"VPIPE_SECRET_UP_KEY": PROVIDER_KEY},
                                 client_idle_timeout=0.5, client_body_timeout=0.3,
                                 max_client_connections=8,
                                 max_upstream_body_bytes=8 * MB,
                                 max_sse_event_bytes=MB) as server:
            yield server


@pytest.fixture
async def client(proxy: ProxyServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key=CLIENT_KEY, max_retries=0) as c:
        yield c


def _health(proxy: ProxyServer, pipeline: str = "chat") -> Health:
    runtime = proxy.reloader.current
    assert runtime is not None
    return runtime.chains[pipeline].provider.health


async def _raw(proxy: ProxyServer, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


async def test_slowloris_head_is_cut_off(proxy: ProxyServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
    started = asyncio.get_running_loop().time()
    closed = False
    for byte in head:  # one byte every 0.1 s: the head would take ~7 s
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            closed = True
            break
        if reader.at_eof():
            closed = True
            break
        await asyncio.sleep(0.1)
    if not closed:
        closed = await asyncio.wait_for(reader.read(), 5) == b""
    elapsed = asyncio.get_running_loop().time() - started
    writer.close()
    assert closed and elapsed < 3, elapsed


async def test_a_slow_body_gets_408(proxy: ProxyServer) -> None:
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: 100\r\n\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(head + b'{"model": ')  # and the other 90 bytes never come
    await writer.drain()
    head_back = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head_back.startswith(b"HTTP/1.1 408"), head_back
    length = int(head_back.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    body = await asyncio.wait_for(reader.readexactly(length), 5)
    writer.close()
    assert orjson.loads(body)["error"]["code"] == "request_timeout"


async def test_idle_connections_are_closed(proxy: ProxyServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed after the 0.5 s idle limit
    writer.close()


async def test_connections_beyond_the_limit_get_503(proxy: ProxyServer) -> None:
    held = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(8)]
    await asyncio.sleep(0.05)
    answer = await _raw(proxy, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 503")
    assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "too_many_connections"
    for _, writer in held:
        writer.close()


async def test_upstream_echoing_keys_leaks_neither(proxy: ProxyServer, upstream: ScriptedUpstream,
                                                  client: AsyncOpenAI,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for status in (400, 500):
        upstream.script = Script(status=status, echo_headers=True)
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="chat-x", messages=HELLO)
        text = caught.value.response.text + str(caught.value.response.headers)
        assert "[redacted]" in text
        assert PROVIDER_KEY not in text and CLIENT_KEY not in text
    # Through a conversion, and in a successful body too.
    upstream.script = Script(status=200, body=orjson.dumps({
        "id": "msg", "type": "message", "role": "assistant", "model": "m",
        "content": [{"type": "text", "text": f"your key is {PROVIDER_KEY}"}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}}))
    answer = await client.chat.completions.create(model="anth-x", messages=HELLO)
    assert answer.choices[0].message.content == "your key is [redacted]"
    assert PROVIDER_KEY not in caplog.text and CLIENT_KEY not in caplog.text


async def test_a_200_mb_reply_is_cut_at_the_cap(proxy: ProxyServer, upstream: ScriptedUpstream,
                                                client: AsyncOpenAI) -> None:
    upstream.script = Script(generate=200 * MB)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="chat-x", messages=HELLO)
    assert caught.value.status_code == 502
    assert "larger than 8388608 bytes" in caught.value.message
    await asyncio.sleep(0.2)
    assert upstream.sent_bytes < 32 * MB  # the proxy hung up; it never read the rest


async def test_an_oversized_event_ends_the_stream_in_band(proxy: ProxyServer,
                                                          upstream: ScriptedUpstream,
                                                          client: AsyncOpenAI) -> None:
    upstream.script = Script(generate=200 * MB, headers={"Content-Type": "text/event-stream"})
    stream = await client.chat.completions.create(model="chat-x", messages=HELLO, stream=True)
    with pytest.raises(openai.APIError, match="VPIPE_MAX_SSE_EVENT_BYTES"):
        async for _ in stream:
            pass
    await asyncio.sleep(0.2)
    assert upstream.sent_bytes < 32 * MB


async def test_200_with_an_error_body_is_502_naming_the_provider(
        proxy: ProxyServer, upstream: ScriptedUpstream, client: AsyncOpenAI) -> None:
    upstream.script = Script(body=orjson.dumps({"error": {"message": "quota gone"}}))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="chat-x", messages=HELLO)
    assert caught.value.status_code == 502
    assert "openai upstream 127.0.0.1" in caught.value.message
    assert "quota gone" in caught.value.message
    async with anthropic.AsyncAnthropic(base_url=proxy.url, api_key=CLIENT_KEY,
                                        max_retries=0) as claude:
        upstream.script = Script(body=orjson.dumps(
            {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}))
        with pytest.raises(anthropic.APIStatusError) as failed:
            await claude.messages.create(model="anth-x", max_tokens=5, messages=HELLO)
        assert failed.value.status_code == 502 and "busy" in failed.value.message


async def test_retry_after_reaches_the_client(proxy: ProxyServer, upstream: ScriptedUpstream,
                                              client: AsyncOpenAI) -> None:
    for status in (429, 503):
        upstream.script = Script(status=status, headers={"Retry-After": "17"}, body=orjson.dumps(
            {"error": {"message": "slow down", "type": "rate_limit_error"}}))
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="chat-x", messages=HELLO)
        assert caught.value.response.headers["retry-after"] == "17"


async def test_client_faults_leave_the_provider_healthy(proxy: ProxyServer) -> None:
    body = orjson.dumps({"model": "chat-x", "messages": HELLO})
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n")
    for _ in range(6):  # more than the 5 consecutive failures that mark a provider unhealthy
        answer = await _raw(proxy, head + "x-request-id: café-☕\r\n\r\n".encode() + body)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        assert b"x-request-id" in answer
    # A client that hangs up mid-request is not the upstream's failure either.
    _reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(head + b"\r\n" + body[:5])
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.1)
    health = _health(proxy)
    assert health.ok and health.failures == 0


async def test_a_client_hanging_up_is_499_not_a_5xx(proxy: ProxyServer,
                                                    upstream: ScriptedUpstream) -> None:
    upstream.script = Script(delay=0.5, body=orjson.dumps({"choices": []}))
    body = orjson.dumps({"model": "chat-x", "messages": HELLO})
    _reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 b"application/json\r\nContent-Length: " + str(len(body)).encode()
                 + b"\r\n\r\n" + body)
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()  # gone while the upstream is still thinking
    await asyncio.sleep(0.6)
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.admin_url + "/metrics") as got:
            metrics = await got.text()
    lines = [line for line in metrics.splitlines()
             if line.startswith("vpipe_requests_total") and 'route="chat"' in line]
    assert any('status="499"' in line for line in lines), lines
    assert not any('status="5' in line for line in lines), lines
    assert _health(proxy).failures == 0


@pytest.mark.parametrize(("encoding", "payload"), [
    ("gzip", b"this is not gzip"),
    ("zstd-or-whatever", b"{}"),
    ("deflate", b"\x00\x01\x02"),
])
async def test_bad_content_encoding_is_400(proxy: ProxyServer, encoding: str,
                                           payload: bytes) -> None:
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            f"\r\nContent-Encoding: {encoding}\r\nConnection: close\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()
    answer = await _raw(proxy, head + payload)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    error = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    assert error["code"] == "bad_content_encoding"


async def test_good_gzip_body_is_served(proxy: ProxyServer) -> None:
    payload = gzip.compress(orjson.dumps({"model": "chat-x", "messages": HELLO}))
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            f"\r\nContent-Encoding: gzip\r\nConnection: close\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()
    assert (await _raw(proxy, head + payload)).startswith(b"HTTP/1.1 200")


async def test_a_stream_converter_crash_ends_in_band(proxy: ProxyServer,
                                                     upstream: ScriptedUpstream) -> None:
    # Events of the wrong shape for the chat->anthropic stream converter.
    upstream.script = Script(chunks=[b'data: {"choices": "nope"}\n\n',
                                     b'data: {"choices": [{"delta": 5}]}\n\n'])
    async with anthropic.AsyncAnthropic(base_url=proxy.url, api_key=CLIENT_KEY,
                                        max_retries=0) as claude:
        with pytest.raises(anthropic.APIError):
            async with claude.messages.stream(model="chat-x", max_tokens=5,
                                              messages=HELLO) as stream:
                async for _ in stream:
                    pass
    assert proxy._watch is not None and not proxy._watch.done()
