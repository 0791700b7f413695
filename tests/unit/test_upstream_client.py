"""The pooled upstream HTTP/1.1 client (`vpipe_proxy.upstream_client`), against real servers.

Covers GET/POST with Content-Length, the path prefix and request framing; chunked,
read-until-close and HEAD responses; keep-alive reuse; the max_connections cap and waiting for a
slot (bounded by the total timeout); idle connections closed by the server (detected, and the
one allowed stale retry, which a fresh connection never gets); Connection: close; TLS with a
trusted and an untrusted certificate; connect refused, DNS failure and connect timeout;
first-byte and total timeouts (also for an endless stream nobody waits on); drops mid-body and
mid-stream; malformed responses; header injection; incremental SSE streaming; cancellation
while waiting for a slot, for headers, during read() and mid-stream; flow control; and
release/close semantics. Servers are aiohttp apps or raw asyncio servers on 127.0.0.1 where
misbehaviour is needed; nothing depends on wall-clock speed except short timeouts that a silent
server makes deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from vpipe_proxy.upstream_client import (
    Timeouts,
    UpstreamConnectError,
    UpstreamError,
    UpstreamPool,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from vpipe_proxy.upstream_protocol import HIGH_WATER

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
JSON = b'{"id":"x","object":"chat.completion","choices":[]}'


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request (head + Content-Length body) from a raw connection; None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + (await reader.readexactly(length) if length else b"")


def ok(body: bytes = JSON, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


class Harness:
    """Starts servers and pools for one test and tears them all down, pools first."""

    def __init__(self) -> None:
        self.pools: list[UpstreamPool] = []
        self.app_servers: list[TestServer] = []
        self.raw_servers: list[asyncio.Server] = []
        self.raw_tasks: set[asyncio.Task[None]] = set()
        self.raw_writers: list[asyncio.StreamWriter] = []

    def pool(self, url: str, **kwargs: object) -> UpstreamPool:
        pool = UpstreamPool(url, **kwargs)  # type: ignore[arg-type]
        self.pools.append(pool)
        return pool

    async def app(self, app: web.Application, prefix: str = "/v1") -> str:
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        self.app_servers.append(server)
        return f"http://127.0.0.1:{server.port}{prefix}"

    async def raw(self, handler: RawHandler, tls: ssl.SSLContext | None = None) -> str:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self.raw_tasks.add(task)
            self.raw_writers.append(writer)
            try:
                await handler(reader, writer)
            except ConnectionError:
                pass
            finally:
                writer.close()
                self.raw_tasks.discard(task)

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
        self.raw_servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"{'https' if tls else 'http'}://127.0.0.1:{port}/v1"

    async def close(self) -> None:
        for pool in self.pools:
            await pool.close()
        for server in self.raw_servers:
            server.close()
        for task in list(self.raw_tasks):
            task.cancel()
        await asyncio.gather(*self.raw_tasks, return_exceptions=True)
        for writer in self.raw_writers:
            writer.close()
        for server in self.raw_servers:
            await server.wait_closed()
        for app_server in self.app_servers:
            await app_server.close()
        await asyncio.sleep(0)


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    await harness.close()


def echo_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "method": request.method})

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=body, headers={
            "X-Echo-Host": request.headers["Host"],
            "X-Echo-Length": request.headers.get("Content-Length", "-"),
            "X-Echo-Custom": request.headers.get("X-Custom", "-"),
        })

    app = web.Application()
    app.router.add_get("/v1/hello", hello)
    app.router.add_post("/v1/echo", echo)
    return app


async def keep_alive_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await read_request(reader) is not None:
        writer.write(ok())


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed certificate for 127.0.0.1 (cert and key in one PEM file)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    pem = tmp_path_factory.mktemp("tls") / "server.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(pem), "-out", str(pem)],
        check=True, capture_output=True,
    )
    return pem


async def wait_for(condition: Callable[[], bool]) -> None:
    """Yield to the loop until `condition` holds (bounded by the test timeout, not a clock)."""
    # Polls pool counters, which have no event to wait on.
    while not condition():
        await asyncio.sleep(0.001)


# -- basic exchanges --------------------------------------------------------------------------


async def test_get_joins_base_path_and_reads_json(h: Harness) -> None:
    pool = h.pool(await h.app(echo_app()))
    async with await pool.request("GET", "/hello", [("Accept", "application/json")], None) as r:
        assert r.status == 200
        assert r.reason == "OK"
        assert r.header("content-type") == "application/json; charset=utf-8"
        assert r.header("CONTENT-TYPE") == r.header("Content-Type")
        assert r.header("x-missing") is None
        assert await r.read() == b'{"path": "/v1/hello", "method": "GET"}'
    assert pool.stats() == {"idle": 1, "in_use": 0, "opened_total": 1, "max": 100}


async def test_post_sends_host_content_length_and_headers(h: Harness) -> None:
    url = await h.app(echo_app())
    pool = h.pool(url)
    body = b'{"model":"m","messages":[]}' * 10
    headers = [("X-Custom", "yes"), ("content-length", "999"), ("Host", "evil")]
    async with await pool.request("POST", "/echo", headers, body) as r:
        assert r.status == 200
        assert await r.read() == body
        assert r.header("x-echo-host") == url.split("/")[2]
        assert r.header("x-echo-length") == str(len(body))  # the caller's framing is dropped
        assert r.header("x-echo-custom") == "yes"


async def test_post_without_body_sends_zero_length(h: Harness) -> None:
    pool = h.pool(await h.app(echo_app()))
    async with await pool.request("POST", "/echo", [], None) as r:
        assert await r.read() == b""
        assert r.header("x-echo-length") == "0"


async def test_large_request_body(h: Harness) -> None:
    pool = h.pool(await h.app(echo_app()))
    body = bytes(range(256)) * 4096  # 1 MiB: written without copying into the head
    async with await pool.request("POST", "/echo", [], body) as r:
        assert await r.read() == body


async def test_chunked_response(h: Harness) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(5):
            await resp.write(b"part%d;" % i)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/v1/chunked", chunked)
    pool = h.pool(await h.app(app))
    for _ in range(2):  # the second request proves the chunked response ended cleanly
        async with await pool.request("GET", "/chunked", [], None) as r:
            assert r.header("transfer-encoding") == "chunked"
            assert await r.read() == b"part0;part1;part2;part3;part4;"
    assert pool.stats()["opened_total"] == 1


async def test_read_until_close_http10(h: Harness) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ")
        await writer.drain()
        writer.write(b"close")
        writer.close()

    pool = h.pool(await h.raw(handler))
    async with await pool.request("GET", "/x", [], None) as r:
        assert await r.read() == b"until close"
    assert pool.stats()["idle"] == 0
    assert pool.stats()["in_use"] == 0


async def test_head_response_has_no_body(h: Harness) -> None:
    pool = h.pool(await h.app(echo_app()))
    async with await pool.request("HEAD", "/hello", [], None) as r:
        assert r.status == 200
        assert int(r.header("content-length") or 0) > 0
        assert await r.read() == b""
    assert pool.stats()["in_use"] == 0


async def test_interim_100_continue_is_skipped(h: Harness) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(extra=b"X-Final: 1\r\n"))

    pool = h.pool(await h.raw(handler))
    for _ in range(2):
        async with await pool.request("POST", "/x", [], b"{}") as r:
            assert r.status == 200
            assert r.header("x-final") == "1"
            assert await r.read() == JSON
    assert pool.stats()["opened_total"] == 1


# -- pooling ----------------------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection(h: Harness) -> None:
    pool = h.pool(await h.app(echo_app()))
    for i in range(50):
        async with await pool.request("POST", "/echo", [], b"n=%d" % i) as r:
            assert await r.read() == b"n=%d" % i
    assert pool.stats() == {"idle": 1, "in_use": 0, "opened_total": 1, "max": 100}


async def test_concurrency_is_capped_at_max_connections(h: Harness) -> None:
    active = 0
    peak = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_post("/v1/slow", slow)
    pool = h.pool(await h.app(app), max_connections=4)

    async def one(i: int) -> bytes:
        async with await pool.request("POST", "/slow", [], b"%d" % i) as r:
            return await r.read()

    results = await asyncio.gather(*(one(i) for i in range(20)))
    assert results == [b"%d" % i for i in range(20)]
    assert pool.stats()["opened_total"] <= 4
    assert peak <= 4
    assert pool.stats()["in_use"] == 0


async def test_warm_opens_idle_connections(h: Harness) -> None:
    pool = h.pool(await h.app(echo_app()), max_connections=3)
    await pool.warm(2)
    assert pool.stats() == {"idle": 2, "in_use": 0, "opened_total": 2, "max": 3}
    await pool.warm(10)  # capped by max_connections
    assert pool.stats()["idle"] == 3
    async with await pool.request("GET", "/hello", [], None) as r:
        await r.read()
    assert pool.stats()["opened_total"] == 3


async def test_server_closing_idle_connection_is_detected(h: Harness) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(ok())
        await writer.drain()
        # then the server's idle timeout closes the connection

    pool = h.pool(await h.raw(handler))
    async with await pool.request("GET", "/x", [], None) as r:
        assert await r.read() == JSON
    await wait_for(lambda: pool.stats()["idle"] == 0)  # connection_lost removed it
    async with await pool.request("GET", "/x", [], None) as r:
        assert await r.read() == JSON
    assert pool.stats()["opened_total"] == 2


async def test_stale_keep_alive_connection_is_retried_once(h: Harness) -> None:
    seen: list[bytes] = []
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        first_connection = connections == 1
        while (request := await read_request(reader)) is not None:
            seen.append(request)
            if first_connection and len(seen) == 2:
                return  # the idle-close race: the request is dropped without a response byte
            writer.write(ok())

    pool = h.pool(await h.raw(handler))
    for _ in range(2):
        async with await pool.request("POST", "/x", [], b"{}") as r:
            assert await r.read() == JSON
    assert len(seen) == 3
    assert pool.stats()["opened_total"] == 2


async def test_fresh_connection_is_never_retried(h: Harness) -> None:
    seen = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        await read_request(reader)
        seen += 1

    pool = h.pool(await h.raw(handler))
    with pytest.raises(UpstreamProtocolError, match=r"127\.0\.0\.1:\d+ closed the connection"):
        await pool.request("POST", "/x", [], b"{}")
    assert seen == 1
    assert pool.stats()["in_use"] == 0


async def test_connection_close_response_is_not_reused(h: Harness) -> None:
    async def closing(request: web.Request) -> web.Response:
        resp = web.Response(body=b"bye")
        resp.force_close()
        return resp

    app = web.Application()
    app.router.add_get("/v1/close", closing)
    pool = h.pool(await h.app(app))
    for _ in range(3):
        async with await pool.request("GET", "/close", [], None) as r:
            assert r.header("connection") == "close"
            assert await r.read() == b"bye"
    assert pool.stats() == {"idle": 0, "in_use": 0, "opened_total": 3, "max": 100}


async def test_waiting_for_a_slot_then_cancelled_does_not_leak(h: Harness) -> None:
    gate = asyncio.Event()

    async def gated(request: web.Request) -> web.Response:
        await gate.wait()
        return web.Response(body=b"done")

    app = web.Application()
    app.router.add_get("/v1/gated", gated)
    pool = h.pool(await h.app(app), max_connections=1)
    first = asyncio.create_task(pool.request("GET", "/gated", [], None))
    await wait_for(lambda: pool.stats()["in_use"] == 1)
    waiting = asyncio.create_task(pool.request("GET", "/gated", [], None))
    await wait_for(lambda: len(pool._waiters) == 1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    gate.set()
    async with await first as r:
        assert await r.read() == b"done"
    async with await pool.request("GET", "/gated", [], None) as r:
        assert await r.read() == b"done"
    assert pool.stats() == {"idle": 1, "in_use": 0, "opened_total": 1, "max": 1}


# -- failures ---------------------------------------------------------------------------------


async def test_tls_with_trusted_certificate(h: Harness, certificate: Path) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certificate)
    url = await h.raw(keep_alive_server, tls=server_ctx)
    pool = h.pool(url, ssl_context=ssl.create_default_context(cafile=str(certificate)))
    for _ in range(3):
        async with await pool.request("POST", "/chat/completions", [], b"{}") as r:
            assert await r.read() == JSON
    assert pool.stats()["opened_total"] == 1


async def test_tls_untrusted_certificate_is_a_connect_error(
    h: Harness, certificate: Path,
) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certificate)
    url = await h.raw(keep_alive_server, tls=server_ctx)
    pool = h.pool(url)  # the default context does not trust the self-signed certificate
    with pytest.raises(UpstreamConnectError, match="CERTIFICATE_VERIFY_FAILED") as info:
        await pool.request("GET", "/x", [], None)
    assert info.value.timeout is False
    assert pool.stats()["in_use"] == 0


async def test_waiting_for_a_slot_is_bounded_by_total_timeout(h: Harness) -> None:
    async def partial(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")
        await reader.read()

    pool = h.pool(await h.raw(partial), max_connections=1,
                  timeouts=Timeouts(first_byte=5, total=0.2))
    holder = await pool.request("GET", "/x", [], None)  # holds the only slot, body unread
    with pytest.raises(UpstreamTimeout, match=r"no free connection .* \(all 1 in use\)") as info:
        await pool.request("GET", "/x", [], None)
    assert info.value.phase == "total"
    assert pool.stats()["in_use"] == 1
    with pytest.raises(UpstreamTimeout, match="total timeout"):
        await holder.read()  # its own budget is spent as well
    holder.release()
    assert pool.stats()["in_use"] == 0


async def test_connect_refused(h: Harness) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pool = h.pool(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(UpstreamConnectError, match=rf"127\.0\.0\.1:{port}") as info:
        await pool.request("GET", "/x", [], None)
    assert info.value.timeout is False
    with pytest.raises(UpstreamConnectError):
        await pool.warm(1)
    assert pool.stats() == {"idle": 0, "in_use": 0, "opened_total": 0, "max": 100}


async def test_dns_failure_is_a_connect_error(h: Harness) -> None:
    pool = h.pool("http://upstream.invalid/v1", timeouts=Timeouts(connect=1.0))
    with pytest.raises(UpstreamConnectError, match=r"upstream\.invalid:80"):
        await pool.request("GET", "/x", [], None)
    assert pool.stats()["in_use"] == 0


async def test_connect_timeout(h: Harness) -> None:
    # A listener that never accepts, with its accept queue filled: further SYNs are dropped.
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        with contextlib.suppress(TimeoutError):
            _, probe = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 0.1)
            probe.close()
            pytest.skip("this kernel accepts connections past a full backlog")
        pool = h.pool(f"http://127.0.0.1:{port}", timeouts=Timeouts(connect=0.2))
        with pytest.raises(UpstreamConnectError, match=rf"127\.0\.0\.1:{port} within the 0\.2s"
                           r" connect timeout") as info:
            await pool.request("GET", "/x", [], None)
        assert info.value.timeout is True
        assert pool.stats()["in_use"] == 0
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_first_byte_timeout(h: Harness) -> None:
    got_eof = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # returns at EOF: the client gave up and closed
        got_eof.set()

    pool = h.pool(await h.raw(silent), timeouts=Timeouts(first_byte=0.2))
    with pytest.raises(UpstreamTimeout, match=r"first-byte timeout") as info:
        await pool.request("POST", "/x", [], b"{}")
    assert info.value.phase == "first_byte"
    await got_eof.wait()
    assert pool.stats()["in_use"] == 0
    assert pool.stats()["idle"] == 0


async def test_total_timeout_while_streaming(h: Harness) -> None:
    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")
        await reader.read()

    pool = h.pool(await h.raw(stalls), timeouts=Timeouts(first_byte=5, total=0.3))
    response = await pool.request("POST", "/x", [], b"{}")
    chunks: list[bytes] = []
    with pytest.raises(UpstreamTimeout, match=r"0\.3s total timeout") as info:
        async for chunk in response.iter_chunks():
            chunks.append(chunk)
    assert info.value.phase == "total"
    assert chunks == [b"data: 1\n\n"]
    response.release()
    assert pool.stats()["in_use"] == 0


async def test_total_timeout_bounds_an_endless_stream(h: Harness) -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"9\r\ndata: x\n\n\r\n" * 100)
            await writer.drain()

    pool = h.pool(await h.raw(endless), timeouts=Timeouts(first_byte=5, total=0.3))
    async with await pool.request("POST", "/x", [], b"{}") as r:
        with pytest.raises(UpstreamTimeout) as info:
            async for _chunk in r.iter_chunks():
                await asyncio.sleep(0.005)  # slower than the upstream: data is always waiting
    assert info.value.phase == "total"
    assert pool.stats()["in_use"] == 0


async def test_server_drops_mid_body(h: Harness) -> None:
    async def drops(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        await writer.drain()

    pool = h.pool(await h.raw(drops))
    async with await pool.request("GET", "/x", [], None) as r:
        with pytest.raises(UpstreamProtocolError, match=r"after 10 body bytes"):
            await r.read()
    assert pool.stats()["in_use"] == 0


async def test_server_drops_mid_stream(h: Harness) -> None:
    async def drops(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"9\r\ndata: 1\n\n\r\n")
        await writer.drain()

    pool = h.pool(await h.raw(drops))
    async with await pool.request("GET", "/x", [], None) as r:
        chunks: list[bytes] = []
        with pytest.raises(UpstreamProtocolError, match="before the body was complete"):
            async for chunk in r.iter_chunks():
                chunks.append(chunk)
        assert chunks == [b"data: 1\n\n"]


async def test_malformed_response(h: Harness) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SPDY/9 banana\r\n\r\n")
        await reader.read()

    pool = h.pool(await h.raw(garbage))
    with pytest.raises(UpstreamProtocolError, match=r"malformed response from upstream 127"):
        await pool.request("GET", "/x", [], None)
    assert pool.stats()["in_use"] == 0


async def test_header_injection_is_refused(h: Harness) -> None:
    pool = h.pool("http://127.0.0.1:9/v1")
    with pytest.raises(UpstreamError, match="line break"):
        await pool.request("GET", "/x", [("X-A", "1\r\nX-Injected: 1")], None)
    with pytest.raises(UpstreamError, match="line break"):
        await pool.request("GET", "/x HTTP/1.1\r\nHost: evil\r\n\r\nGET /y", [], None)
    assert pool.stats()["opened_total"] == 0


def test_base_url_validation() -> None:
    assert UpstreamPool("https://api.example.com/v1/").base_url == "https://api.example.com/v1/"
    for bad in ("ftp://x/v1", "http:///v1", "http://u:p@x/v1", "http://x/v1?q=1"):
        with pytest.raises(ValueError, match="upstream base URL"):
            UpstreamPool(bad)


# -- streaming, cancellation, flow control ----------------------------------------------------


async def test_iter_chunks_streams_events_incrementally(h: Harness) -> None:
    gate = asyncio.Event()

    async def sse(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: 1\n\n")
        await gate.wait()  # the rest is only sent once the client has seen event 1
        await resp.write(b"data: 2\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/sse", sse)
    pool = h.pool(await h.app(app))
    received = b""
    async with await pool.request("POST", "/sse", [], b"{}") as r:
        assert r.header("content-type") == "text/event-stream"
        async for chunk in r.iter_chunks():
            received += chunk
            if received == b"data: 1\n\n":
                assert not gate.is_set()
                gate.set()
    assert received == b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
    assert pool.stats() == {"idle": 1, "in_use": 0, "opened_total": 1, "max": 100}


async def test_cancel_mid_stream_closes_connection(h: Harness) -> None:
    closed = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"9\r\ndata: 1\n\n\r\n")
        await reader.read()
        closed.set()

    pool = h.pool(await h.raw(endless))
    first = asyncio.Event()

    async def consume() -> None:
        async with await pool.request("POST", "/x", [], b"{}") as r:
            async for _chunk in r.iter_chunks():
                first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    await asyncio.sleep(0)  # let the consumer block on the next chunk
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.stats() == {"idle": 0, "in_use": 0, "opened_total": 1, "max": 100}
    await closed.wait()  # the server saw the connection close


async def test_cancel_while_waiting_for_headers(h: Harness) -> None:
    requested = asyncio.Event()
    closed = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        requested.set()
        await reader.read()
        closed.set()

    pool = h.pool(await h.raw(silent))
    task = asyncio.create_task(pool.request("POST", "/x", [], b"{}"))
    await requested.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.stats() == {"idle": 0, "in_use": 0, "opened_total": 1, "max": 100}
    await closed.wait()


async def test_cancel_during_read_closes_connection(h: Harness) -> None:
    async def partial(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")
        await reader.read()

    pool = h.pool(await h.raw(partial))
    response = await pool.request("GET", "/x", [], None)
    task = asyncio.create_task(response.read())
    await wait_for(lambda: response._conn is not None and response._conn.waiter is not None)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.stats()["in_use"] == 0
    response.release()  # idempotent after the cancellation already released it
    assert pool.stats()["in_use"] == 0


async def test_flow_control_large_body_slowly_consumed(h: Harness) -> None:
    size = 8 * 1024 * 1024
    payload = bytes(range(251)) * (size // 251 + 1)

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload))
        writer.write(payload)
        await writer.drain()
        await reader.read()

    pool = h.pool(await h.raw(big))
    received = bytearray()
    paused_seen = False
    largest = 0
    async with await pool.request("GET", "/x", [], None) as r:
        async for chunk in r.iter_chunks():
            received += chunk
            largest = max(largest, len(chunk))
            for _ in range(3):  # a consumer slower than the socket
                await asyncio.sleep(0)
            conn = r._conn
            paused_seen = paused_seen or (conn is not None and conn.paused)
    assert bytes(received) == payload
    assert paused_seen
    assert largest <= HIGH_WATER + 512 * 1024  # bounded by the mark plus one socket read
    assert pool.stats() == {"idle": 1, "in_use": 0, "opened_total": 1, "max": 100}


# -- release and close ------------------------------------------------------------------------


async def test_release_before_read_closes_connection(h: Harness) -> None:
    pool = h.pool(await h.app(echo_app()))
    response = await pool.request("POST", "/echo", [], b"x" * 1000)
    response.release()
    response.release()
    assert pool.stats() == {"idle": 0, "in_use": 0, "opened_total": 1, "max": 100}
    with pytest.raises(UpstreamError, match="already released"):
        await response.read()
    async with await pool.request("POST", "/echo", [], b"y") as r:
        assert await r.read() == b"y"
    assert pool.stats()["opened_total"] == 2


async def test_close_then_request_raises(h: Harness) -> None:
    pool = h.pool(await h.app(echo_app()))
    in_use = await pool.request("POST", "/echo", [], b"a")
    async with await pool.request("POST", "/echo", [], b"b") as r:
        await r.read()
    assert pool.stats()["idle"] == 1
    await pool.close()
    assert pool.stats()["idle"] == 0
    assert await in_use.read() == b"a"
    in_use.release()  # released after close: closed, not pooled
    assert pool.stats() == {"idle": 0, "in_use": 0, "opened_total": 2, "max": 100}
    with pytest.raises(UpstreamError, match="closed"):
        await pool.request("GET", "/hello", [], None)
    with pytest.raises(UpstreamError, match="closed"):
        await pool.warm()


async def test_close_fails_waiters(h: Harness) -> None:
    gate = asyncio.Event()

    async def gated(request: web.Request) -> web.Response:
        await gate.wait()
        return web.Response(body=b"done")

    app = web.Application()
    app.router.add_get("/v1/gated", gated)
    pool = h.pool(await h.app(app), max_connections=1)
    first = asyncio.create_task(pool.request("GET", "/gated", [], None))
    await wait_for(lambda: pool.stats()["in_use"] == 1)
    waiting = asyncio.create_task(pool.request("GET", "/gated", [], None))
    await wait_for(lambda: len(pool._waiters) == 1)
    await pool.close()
    with pytest.raises(UpstreamError, match="closed"):
        await waiting
    gate.set()
    with contextlib.suppress(UpstreamError):
        (await first).release()
    assert pool.stats()["in_use"] == 0
