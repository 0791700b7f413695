"""A light HTTP/1.1 load generator: asyncio Protocols + httptools' C parser, no client library.

aiohttp's ClientSession costs more CPU per request than the proxy under test, so it would
measure itself. Here a request is one `transport.write` of prebuilt bytes and the response is
parsed by callbacks; closed-loop connections send their next request from the completion
callback itself, with no task or future per request.

- `closed_loop`: N keep-alive connections, each sending its next request as soon as the previous
  answer is complete (saturation; or a fixed request count).
- `open_loop`: requests sent at a fixed rate whatever the answers do (latency at a given load);
  latency is measured per request from the moment its bytes are written.
- `http_get`: one-off GET with `Connection: close` (admin endpoints).
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from array import array
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import cast

import httptools

_now = time.perf_counter


def post_request(host: str, port: int, path: str, body: bytes,
                 headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """The bytes of one keep-alive POST with a JSON body."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
             f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Result:
    """What one load run saw. Times are seconds from `time.perf_counter`."""

    elapsed: float = 0.0
    sent: int = 0
    ok: int = 0
    bad_status: int = 0  # complete answers with a status other than 200
    errors: int = 0  # connection lost mid-request, or no answer within the timeout
    connections_opened: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    first_chunk: array[float] = field(default_factory=lambda: array("d"))
    sent_at: array[float] = field(default_factory=lambda: array("d"))  # parallel to latencies
    statuses: dict[int, int] = field(default_factory=dict)
    late_sends: int = 0  # open loop: sends more than 1 ms behind schedule

    def merge(self, other: Result) -> None:
        """Add `other`'s counts and samples to this result (for runs split into rounds)."""
        self.elapsed += other.elapsed
        self.sent += other.sent
        self.ok += other.ok
        self.bad_status += other.bad_status
        self.errors += other.errors
        self.connections_opened += other.connections_opened
        self.latencies.extend(other.latencies)
        self.first_chunk.extend(other.first_chunk)
        self.sent_at.extend(other.sent_at)
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        self.late_sends += other.late_sends

    @property
    def failed(self) -> int:
        return self.bad_status + self.errors

    @property
    def completed(self) -> int:
        return self.ok + self.bad_status

    @property
    def rate(self) -> float:
        return self.completed / self.elapsed if self.elapsed else math.nan


class _Conn(asyncio.Protocol):
    """One keep-alive client connection running one exchange at a time."""

    __slots__ = ("busy", "closed", "driver", "first_at", "parser", "sent_at", "status",
                 "transport")

    def __init__(self, driver: _Driver) -> None:
        self.driver = driver
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.closed = False
        self.sent_at = 0.0
        self.first_at = 0.0
        self.status = 0

    def send(self, request: bytes) -> None:
        transport = self.transport
        assert transport is not None
        self.busy = True
        self.first_at = 0.0
        self.status = 0
        self.sent_at = _now()
        transport.write(request)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.busy:
            self.busy = False
            self.driver.broken(self)
        self.driver.lost(self)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if not self.first_at:
            self.first_at = _now()

    def on_message_complete(self) -> None:
        now = _now()
        self.busy = False
        if not self.parser.should_keep_alive():
            self.closed = True
            self.abort()
        self.driver.completed(self, now)


class _Driver:
    def __init__(self, record: bool) -> None:
        self.result = Result()
        self.record = record
        self.loop = asyncio.get_running_loop()
        self.conns: list[_Conn] = []
        self.done: asyncio.Future[None] = self.loop.create_future()

    async def connect(self, host: str, port: int) -> _Conn:
        _, conn = await self.loop.create_connection(lambda: _Conn(self), host, port)
        self.result.connections_opened += 1
        self.conns.append(conn)
        return conn

    def account(self, conn: _Conn, now: float) -> None:
        r = self.result
        if conn.status == 200:
            r.ok += 1
        else:
            r.bad_status += 1
            r.statuses[conn.status] = r.statuses.get(conn.status, 0) + 1
        if self.record:
            r.latencies.append(now - conn.sent_at)
            r.sent_at.append(conn.sent_at)
            if conn.first_at:
                r.first_chunk.append(conn.first_at - conn.sent_at)

    def completed(self, conn: _Conn, now: float) -> None:
        raise NotImplementedError

    def broken(self, conn: _Conn) -> None:
        self.result.errors += 1

    def lost(self, conn: _Conn) -> None:
        if conn in self.conns:
            self.conns.remove(conn)

    def close(self) -> None:
        for conn in list(self.conns):
            conn.abort()


class _Closed(_Driver):
    """Each connection sends its next request from the previous one's completion callback; a
    connection the server closes is replaced, so error answers with `Connection: close` are
    counted instead of silently shrinking the load."""

    def __init__(self, host: str, port: int, request: bytes, total: int | None,
                 record: bool) -> None:
        super().__init__(record)
        self.host = host
        self.port = port
        self.request = request
        self.deadline = 0.0
        self.total = total
        self.active = 0
        self.replacing: set[asyncio.Task[None]] = set()

    def start(self, conn: _Conn) -> None:
        if self._more():
            self.active += 1
            self.result.sent += 1
            conn.send(self.request)

    def _more(self) -> bool:
        if self.total is not None:
            return self.result.sent < self.total
        return _now() < self.deadline

    def completed(self, conn: _Conn, now: float) -> None:
        self.account(conn, now)
        self._next(conn)

    def broken(self, conn: _Conn) -> None:
        super().broken(conn)
        self._next(conn)

    def _next(self, conn: _Conn) -> None:
        if not self._more():
            self._idle()
        elif not conn.closed:
            self.result.sent += 1
            conn.send(self.request)
        else:
            task = self.loop.create_task(self._replace())
            self.replacing.add(task)
            task.add_done_callback(self.replacing.discard)

    async def _replace(self) -> None:
        try:
            conn = await self.connect(self.host, self.port)
        except OSError:
            self.result.errors += 1
            self._idle()
            return
        if self._more():
            self.result.sent += 1
            conn.send(self.request)
        else:
            self._idle()

    def _idle(self) -> None:
        self.active -= 1
        if self.active == 0 and not self.done.done():
            self.done.set_result(None)


async def closed_loop(host: str, port: int, request: bytes, connections: int, *,
                      duration: float | None = None, total: int | None = None,
                      record: bool = True) -> Result:
    """Saturate with `connections` back-to-back connections for `duration` s or `total` requests."""
    driver = _Closed(host, port, request, total, record)
    conns = [await driver.connect(host, port) for _ in range(connections)]
    started = _now()
    driver.deadline = started + (duration if duration is not None else 1e9)
    for conn in conns:
        driver.start(conn)
    try:
        if driver.active:
            await driver.done
    finally:
        driver.result.elapsed = _now() - started
        for task in driver.replacing:
            task.cancel()
        driver.close()
    return driver.result


class _Open(_Driver):
    def __init__(self, record: bool) -> None:
        super().__init__(record)
        self.idle: list[_Conn] = []
        self.in_flight = 0
        self.scheduling = True

    def completed(self, conn: _Conn, now: float) -> None:
        self.account(conn, now)
        self.in_flight -= 1
        if not conn.closed:
            self.idle.append(conn)
        self._check_done()

    def broken(self, conn: _Conn) -> None:
        super().broken(conn)
        self.in_flight -= 1
        self._check_done()

    def lost(self, conn: _Conn) -> None:
        super().lost(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def _check_done(self) -> None:
        if not self.scheduling and self.in_flight == 0 and not self.done.done():
            self.done.set_result(None)


async def open_loop(host: str, port: int, request: bytes, rate: float, duration: float, *,
                    preopen: int = 8, drain_s: float = 10.0) -> Result:
    """Send `rate` requests per second for `duration` s, each as scheduled, whatever the replies.

    A request whose scheduled time finds no idle connection gets a new one (counted in
    `connections_opened`). Requests unanswered `drain_s` s after the last send count as errors.
    """
    driver = _Open(record=True)
    for _ in range(preopen):
        driver.idle.append(await driver.connect(host, port))
    r = driver.result
    interval = 1.0 / rate
    count = max(1, round(rate * duration))
    started = _now() + 0.01
    try:
        for i in range(count):
            due = started + i * interval
            delay = due - _now()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.001:
                r.late_sends += 1
            if driver.idle:
                conn = driver.idle.pop()
            else:
                try:
                    conn = await driver.connect(host, port)
                except OSError:
                    r.sent += 1
                    r.errors += 1
                    continue
            driver.in_flight += 1
            r.sent += 1
            conn.send(request)
        driver.scheduling = False
        driver._check_done()
        try:
            await asyncio.wait_for(asyncio.shield(driver.done), drain_s)
        except TimeoutError:
            r.errors += driver.in_flight
    finally:
        r.elapsed = _now() - started
        driver.close()
    return r


async def http_get(host: str, port: int, path: str, limit_s: float = 5.0) -> tuple[int, bytes]:
    """One GET with `Connection: close` answered within `limit_s`; returns (status, body)."""
    async with asyncio.timeout(limit_s):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
                         .encode())
            raw = await reader.read()
        finally:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body
