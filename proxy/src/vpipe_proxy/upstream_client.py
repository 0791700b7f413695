"""A lean pooled keep-alive HTTP/1.1 client for the proxy's upstream LLM APIs.

Why it exists: every proxied request makes one upstream call, and aiohttp's ClientSession costs
more per request than the whole proxy budget allows (it saturates near 2,500 req/s on one core;
the proxy must do >= 4,000 req/s with <= 1 ms p50 added). This client is asyncio Protocols plus
httptools' C parser, with one future and at most two timer handles per request.

What it must not do: retry a request the upstream may have seen (the only retry is the
stale-keep-alive case documented in `UpstreamPool.request`), follow redirects, decompress,
buffer a streamed body to its end, speak anything but HTTP/1.1, or log/inspect header values
(they carry credentials).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final
from urllib.parse import urlsplit

from vpipe_proxy.upstream_protocol import (
    Connection,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)

__all__ = [
    "Timeouts",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamPool",
    "UpstreamProtocolError",
    "UpstreamResponse",
    "UpstreamTimeout",
]

_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
# The pool frames the request itself; the caller's copies of these would contradict it.
_FRAMING_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding"})
_FRAMING_LENGTHS: Final = frozenset(len(h) for h in _FRAMING_HEADERS)


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0  # seconds to open a TCP(+TLS) connection
    first_byte: float = 120.0  # from sending the request until status line + headers arrive
    total: float = 600.0  # the whole exchange, including reading the full body / stream


_DEFAULT_TIMEOUTS: Final = Timeouts()


class UpstreamPool:
    """Keep-alive connections to one upstream origin, at most `max_connections` at a time."""

    __slots__ = (
        "_base_url", "_closed", "_host", "_idle", "_in_use", "_limits", "_line_tail", "_max",
        "_opened_total", "_port", "_prefix", "_ssl", "_timeouts", "_waiters", "_where",
    )

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 100,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        url = urlsplit(base_url)
        scheme = url.scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"upstream base URL {base_url!r} must be http:// or https://")
        if not url.hostname:
            raise ValueError(f"upstream base URL {base_url!r} has no host")
        if url.username is not None or url.query or url.fragment:
            raise ValueError(
                f"upstream base URL {base_url!r} must not carry credentials, query or fragment")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        if ssl_context is not None and scheme != "https":
            raise ValueError(f"an ssl_context was given for the plain-http URL {base_url!r}")
        default_port = 443 if scheme == "https" else 80
        host = url.hostname
        port = url.port or default_port
        bracketed = f"[{host}]" if ":" in host else host
        host_header = bracketed if port == default_port else f"{bracketed}:{port}"
        self._base_url = base_url
        self._host = host
        self._port = port
        self._where = f"{bracketed}:{port}"
        self._prefix = url.path.rstrip("/")
        # The constant tail of every request line plus the Host header, built once.
        self._line_tail = f" HTTP/1.1\r\nHost: {host_header}\r\n"
        self._ssl = (ssl_context or ssl.create_default_context()) if scheme == "https" else None
        self._max = max_connections
        self._timeouts = timeouts
        self._limits = (timeouts.first_byte, timeouts.total)
        self._idle: list[Connection] = []  # LIFO: the most recently used socket is the warmest
        self._in_use = 0  # slots taken, including connections still being opened
        self._opened_total = 0
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._closed = False

    @property
    def base_url(self) -> str:
        return self._base_url

    def stats(self) -> dict[str, int]:
        return {"idle": len(self._idle), "in_use": self._in_use,
                "opened_total": self._opened_total, "max": self._max}

    async def request(
        self, method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes | None,
    ) -> UpstreamResponse:
        """Send one request; return once the status line and headers have arrived.

        The caller must release() the response (or use it as an async context manager).
        """
        if self._closed:
            raise UpstreamError(f"the pool for upstream {self._where} is closed")
        head = self._head(method, path, headers, body)
        loop = asyncio.get_running_loop()
        timeouts = self._timeouts
        total_at = loop.time() + timeouts.total  # the total budget includes waiting for a slot
        is_head = method == "HEAD"
        conn = await self._acquire(loop, total_at)
        retried = False
        while True:
            first_at = loop.time() + timeouts.first_byte  # counted from sending
            phase = "first_byte"
            if total_at <= first_at:
                first_at, phase = total_at, "total"
            conn.begin(head, body, is_head, first_at, phase, total_at)
            try:
                while not conn.headers_done and conn.error is None:
                    await conn.wait()
            except asyncio.CancelledError:
                conn.keep_alive = False  # the caller is gone; never reuse a half-done exchange
                self._finish(conn)
                raise
            error = conn.error
            if conn.headers_done or error is None:
                return UpstreamResponse(self, conn)
            if conn.stale and not retried:
                # A keep-alive connection taken from the idle list was closed by the server
                # while our request was in flight, without a single response byte: the server's
                # idle timeout raced our reuse, so the upstream never processed the request.
                # This race is the one case resent, once, on a fresh connection in the same
                # slot. It is not a retry policy: a failure after any response byte, a timeout,
                # or any failure on a fresh connection is never resent.
                retried = True
                conn.abort()
                try:
                    conn = await self._connect(loop)
                except BaseException:
                    self._put(None)
                    raise
                continue
            self._finish(conn)
            raise error

    async def warm(self, n: int = 1) -> None:
        """Open connections until `n` are idle (within max_connections), ahead of traffic."""
        if self._closed:
            raise UpstreamError(f"the pool for upstream {self._where} is closed")
        want = min(n - len(self._idle), self._max - len(self._idle) - self._in_use)
        if want <= 0:
            return
        loop = asyncio.get_running_loop()
        self._in_use += want
        results = await asyncio.gather(*(self._warm_one(loop) for _ in range(want)),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def close(self) -> None:
        """Close idle connections now; in-use ones close on release; new requests fail."""
        self._closed = True
        idle, self._idle = self._idle, []
        waiters, self._waiters = self._waiters, deque()
        for fut in waiters:
            if not fut.done():
                fut.set_exception(
                    UpstreamError(f"the pool for upstream {self._where} was closed"))
        for conn in idle:
            conn.in_pool = False
            conn.abort()
        if idle:
            # Waiting for connection_lost means no socket outlives close() (no ResourceWarning
            # when the loop ends right after); the cap only guards against a stuck transport.
            await asyncio.wait([conn.wait_lost() for conn in idle], timeout=5.0)

    # -- internals -----------------------------------------------------------------------------

    def _head(
        self, method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes | None,
    ) -> bytes:
        if not path.startswith("/"):
            path = "/" + path
        parts = [method, " ", self._prefix, path, self._line_tail]
        lines = 3  # request line, Host, final blank line
        if body is not None:
            parts.append(f"Content-Length: {len(body)}\r\n")
            lines += 1
        elif method in _BODY_METHODS:
            parts.append("Content-Length: 0\r\n")
            lines += 1
        for name, value in headers:
            if len(name) in _FRAMING_LENGTHS and name.lower() in _FRAMING_HEADERS:
                continue
            parts.append(f"{name}: {value}\r\n")
            lines += 1
        parts.append("\r\n")
        text = "".join(parts)
        # One pass each instead of a per-header check: a CR or LF inside a method, path, name or
        # value would let it inject headers or a second request (smuggling).
        if text.count("\n") != lines or text.count("\r") != lines:
            raise UpstreamError(
                f"refusing to send a request to upstream {self._where}: a line break in the "
                "method, path or a header")
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            raise UpstreamError(
                f"refusing to send a request to upstream {self._where}: the path or a header "
                "is not latin-1 (percent-encode the path, encode header values)") from None

    async def _acquire(self, loop: asyncio.AbstractEventLoop, total_at: float) -> Connection:
        idle = self._idle
        while idle:
            conn = idle.pop()
            conn.in_pool = False
            if not conn.closed:  # EOF seen, connection_lost not yet run
                self._in_use += 1
                return conn
        if self._in_use < self._max:
            self._in_use += 1
            try:
                return await self._connect(loop)
            except BaseException:
                self._put(None)
                raise
        fut: asyncio.Future[Connection | None] = loop.create_future()
        self._waiters.append(fut)
        try:
            async with asyncio.timeout_at(total_at):
                handed = await fut
        except TimeoutError:
            raise self._slot_timeout(fut) from None
        except BaseException:
            self._pass_on(fut)
            raise
        if handed is not None:
            return handed
        try:
            return await self._connect(loop)  # handed a free slot, not a connection
        except BaseException:
            self._put(None)
            raise

    def _pass_on(self, fut: asyncio.Future[Connection | None]) -> None:
        # A cancelled/timed-out waiter also cancels `fut` (then _put skips it), unless a slot was
        # already handed over: pass that on instead of leaking it.
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            self._put(fut.result())

    def _slot_timeout(self, fut: asyncio.Future[Connection | None]) -> UpstreamTimeout:
        self._pass_on(fut)
        return UpstreamTimeout(
            f"no free connection to upstream {self._where} within the "
            f"{self._timeouts.total:g}s total timeout (all {self._max} in use)", phase="total")

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> Connection:
        """Open a connection for a slot the caller already holds."""
        timeout = self._timeouts.connect
        try:
            async with asyncio.timeout(timeout) as scope:
                _, conn = await loop.create_connection(
                    lambda: Connection(loop, self._where, self._limits, self._idle_lost),
                    self._host, self._port, ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )
        except TimeoutError as e:
            if scope.expired():
                raise UpstreamConnectError(
                    f"could not connect to upstream {self._where} within the {timeout:g}s "
                    "connect timeout", timeout=True) from None
            raise UpstreamConnectError(
                f"could not connect to upstream {self._where}: {e}", timeout=True) from e
        except OSError as e:  # refused, DNS (gaierror), TLS (SSLError)
            raise UpstreamConnectError(
                f"could not connect to upstream {self._where}: {e}") from e
        self._opened_total += 1
        return conn

    async def _warm_one(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            conn = await self._connect(loop)
        except BaseException:
            self._put(None)
            raise
        self._put(conn)

    def _put(self, conn: Connection | None) -> None:
        """Give back a slot, with a reusable connection or None; a waiter gets it first."""
        if conn is not None:
            if self._closed:
                conn.abort()
                conn = None
            else:
                conn.idle()
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        self._in_use -= 1
        if conn is not None:
            conn.in_pool = True
            self._idle.append(conn)

    def _finish(self, conn: Connection) -> None:
        if conn.reusable():
            self._put(conn)
            return
        if conn.complete and conn.error is None:
            conn.close()  # a clean end without keep-alive (Connection: close, HTTP/1.0)
        else:
            conn.abort()
        self._put(None)

    def _idle_lost(self, conn: Connection) -> None:
        # The server closed a connection while it sat idle: it must never be handed out.
        # (in_pool guarantees it is in the list.)
        self._idle.remove(conn)


class UpstreamResponse:
    """Status and headers of an upstream response; the body is read or streamed on demand."""

    __slots__ = ("_conn", "_eof", "_pool", "headers", "reason", "status")

    def __init__(self, pool: UpstreamPool, conn: Connection) -> None:
        self._pool = pool
        self._conn: Connection | None = conn
        self._eof = False
        self.status: int = conn.status
        self.reason: str = conn.reason.decode("latin-1")
        self.headers: list[tuple[str, str]] = conn.headers

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    async def read(self, limit: int = 0) -> bytes:
        """The whole body; raises UpstreamTimeout("total") or UpstreamProtocolError, also when
        the body exceeds `limit` bytes (0: no limit); the connection is then dropped."""
        conn = self._live()
        parts: list[bytes] = []
        while True:
            if conn.chunks:
                parts += conn.take_all()
                if limit and conn.body_bytes > limit:
                    conn.keep_alive = False
                    conn.error = UpstreamProtocolError(
                        f"upstream {self._pool._where} sent a body larger than {limit} bytes "
                        "(VPIPE_MAX_UPSTREAM_BODY_BYTES)")
                    conn.abort()
                    raise conn.error
            if conn.complete:
                break
            if conn.error is not None:
                raise conn.error
            await self._wait(conn)
        self._eof = True
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive (everything buffered since the last step, joined)."""
        return _Chunks(self)

    def release(self) -> None:
        """Return the connection if the body was consumed and keep-alive holds, else close it."""
        conn = self._conn
        if conn is not None:
            self._conn = None
            self._pool._finish(conn)

    async def __aenter__(self) -> UpstreamResponse:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _live(self) -> Connection:
        conn = self._conn
        if conn is None:
            raise UpstreamError(
                f"the response from upstream {self._pool._where} was already released")
        return conn

    async def _wait(self, conn: Connection) -> None:
        try:
            await conn.wait()
        except asyncio.CancelledError:
            # The consumer (client) went away mid-body: the rest of the body will never be
            # read, so the connection cannot carry another exchange.
            conn.keep_alive = False
            self.release()
            raise


class _Chunks:
    """The iter_chunks iterator: a plain class, so no async generator needs finalizing."""

    __slots__ = ("_response",)

    def __init__(self, response: UpstreamResponse) -> None:
        self._response = response

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        response = self._response
        conn = response._conn
        if conn is None:
            if response._eof:
                raise StopAsyncIteration
            conn = response._live()
        while True:
            if conn.chunks:
                return conn.take()
            if conn.complete:
                response._eof = True
                raise StopAsyncIteration
            if conn.error is not None:
                raise conn.error
            await response._wait(conn)
