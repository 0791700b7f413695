"""One upstream HTTP/1.1 connection as an asyncio Protocol, fed to httptools' C parser.

This is the wire half of `vpipe_proxy.upstream_client`: it owns a socket, parses responses and
buffers body bytes until the consumer takes them. Everything about pooling, timeouts policy and
the public response object lives in `upstream_client`; callers import only that module.

It must not await anything, log, retry, or look at header values beyond the few that frame the
body (values may carry credentials). Every callback runs on the hot path, so state is plain slot
attributes and the consumer is woken through one future at a time.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from contextlib import suppress
from typing import Final, cast

import httptools

# Above this much unread body the socket stops being read, so a slow SSE consumer cannot make the
# proxy buffer a whole completion in memory; taking the buffer resumes reading.
HIGH_WATER: Final = 256 * 1024


class UpstreamError(Exception):
    """An upstream exchange failed; the message says what happened and to which host:port."""


class UpstreamConnectError(UpstreamError):
    """No connection could be opened (refused, DNS, TLS, connect timeout)."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class UpstreamTimeout(UpstreamError):
    """The first-byte or the total timeout passed; `phase` says which."""

    def __init__(self, message: str, *, phase: str) -> None:
        super().__init__(message)
        self.phase = phase


class UpstreamProtocolError(UpstreamError):
    """The upstream sent something that is not a valid response, or closed mid-response."""


class Connection(asyncio.Protocol):
    """A keep-alive connection and the state of the one exchange running on it."""

    __slots__ = (
        "active", "body_bytes", "buffered", "chunks", "closed", "complete", "error", "framed",
        "gone", "got_bytes", "headers", "headers_done", "in_pool", "is_head", "keep_alive",
        "limits", "loop", "lost", "on_idle_lost", "parser", "paused", "phase", "reason", "reused",
        "stale", "status", "timer", "total_at", "transport", "waiter", "where",
    )

    transport: asyncio.Transport

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        where: str,
        limits: tuple[float, float],
        on_idle_lost: Callable[[Connection], None],
    ) -> None:
        self.loop = loop
        self.where = where
        self.limits = limits  # (first_byte, total) seconds, for error messages
        self.on_idle_lost = on_idle_lost
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False  # peer EOF seen or we closed it: never hand it out again
        self.in_pool = False  # sitting in the pool's idle list
        self.reused = False  # has been idle before, so the server may have dropped it
        self.gone = False  # connection_lost has run
        self.lost: asyncio.Future[None] | None = None
        self.active = False
        self.is_head = False
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[str, str]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.framed = False  # Content-Length or chunked; otherwise the body ends at EOF
        self.got_bytes = False
        self.body_bytes = 0
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.error: UpstreamError | None = None
        self.stale = False
        self.waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.phase = "first_byte"
        self.total_at = 0.0

    # -- exchange control (called by the pool / response) ------------------------------------

    def begin(
        self, head: bytes, body: bytes | None, is_head: bool, first_at: float, phase: str,
        total_at: float,
    ) -> None:
        self.active = True
        self.is_head = is_head
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.got_bytes = False
        self.body_bytes = 0
        self.error = None
        self.stale = False
        self.total_at = total_at
        self.phase = phase
        self.timer = self.loop.call_at(first_at, self._on_timeout)
        # One write is one send() for the usual small JSON body; large bodies are not copied.
        if body is None:
            self.transport.write(head)
        elif len(body) <= 65536:
            self.transport.write(head + body)
        else:
            self.transport.write(head)
            self.transport.write(body)

    def wait(self) -> asyncio.Future[None]:
        fut = self.loop.create_future()
        self.waiter = fut
        return fut

    def take(self) -> bytes:
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self._drained()
        return data

    def take_all(self) -> list[bytes]:
        chunks = self.chunks
        self.chunks = []
        self._drained()
        return chunks

    def reusable(self) -> bool:
        return (self.complete and self.keep_alive and not self.closed and not self.chunks
                and self.error is None)

    def idle(self) -> None:
        self.active = False
        self.reused = True

    def close(self) -> None:
        self._stop_timer()
        if not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        self._stop_timer()
        self.closed = True
        self.transport.abort()

    def wait_lost(self) -> asyncio.Future[None]:
        """Resolves once connection_lost ran, so close() can leave no socket behind."""
        if self.lost is None:
            self.lost = self.loop.create_future()
            if self.gone:
                self.lost.set_result(None)
        return self.lost

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        # Request heads are small writes answered by the peer: Nagle would add delayed-ACK stalls.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if not self.active:
            # Bytes on an idle connection (e.g. a 408 before the server hangs up) belong to no
            # request; the connection can no longer be trusted to frame the next response.
            self.abort()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError(
                f"upstream {self.where} switched protocols (HTTP upgrade), which is not supported"))
        except httptools.HttpParserError as e:
            if self.complete:
                # Trailing bytes after a complete response: keep the response, drop the socket.
                self.keep_alive = False
                self.abort()
            else:
                self._fail(UpstreamProtocolError(
                    f"malformed response from upstream {self.where}: {e}"))
        if self.timer is None and self.headers_done and not self.complete and self.error is None:
            # The body outlives this read: bound it by the total timeout, whether or not the
            # consumer is waiting. Armed here rather than at the headers because most responses
            # arrive whole in the same read and never need this second timer.
            self.phase = "total"
            self.timer = self.loop.call_at(self.total_at, self._on_timeout)

    def eof_received(self) -> bool | None:
        self.closed = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.gone = True
        self._stop_timer()
        if self.in_pool:
            self.in_pool = False
            self.on_idle_lost(self)
        if self.active and not self.complete and self.error is None:
            if self.headers_done and not self.framed and exc is None:
                # The response had neither Content-Length nor chunked: EOF is its end.
                self.complete = True
            else:
                self.stale = self.reused and not self.got_bytes
                cause = f" ({exc})" if exc is not None else ""
                if self.headers_done:
                    what = f"after {self.body_bytes} body bytes, before the body was complete"
                else:
                    what = "before sending a complete response head"
                self.error = UpstreamProtocolError(
                    f"upstream {self.where} closed the connection {what}{cause}")
            self._wake()
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(None)

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            raise UpstreamProtocolError("a second response arrived for one request")
        self.headers = []
        self.reason = b""
        self.framed = False

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))
        n = len(name)
        if n == 14:
            if name.lower() == b"content-length":
                self.framed = True
        elif n == 17 and name.lower() == b"transfer-encoding":
            self.framed = value.rstrip().lower().endswith(b"chunked")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            return  # 1xx: an interim response; the final one follows on the same message loop
        self.status = status
        self.headers_done = True
        self._stop_timer()
        if self.is_head:
            # A HEAD response has no body whatever its Content-Length says; httptools cannot be
            # told so, hence the connection is not reused after it.
            self.complete = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        n = len(body)
        self.body_bytes += n
        self.buffered += n
        if self.buffered > HIGH_WATER and not self.paused and not self.closed:
            self.paused = True
            self.transport.pause_reading()
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    def on_message_complete(self) -> None:
        if not self.headers_done:
            return  # end of a 1xx interim response
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive() and not self.is_head
        self._stop_timer()
        self._wake()

    # -- internals -----------------------------------------------------------------------------

    def _drained(self) -> None:
        self.buffered = 0
        if self.paused:
            self.paused = False
            if not self.closed:
                self.transport.resume_reading()

    def _on_timeout(self) -> None:
        self.timer = None
        if self.complete or self.error is not None:
            return
        first_byte, total = self.limits
        if self.phase == "first_byte":
            message = (f"upstream {self.where} sent no response head within the "
                       f"{first_byte:g}s first-byte timeout")
        else:
            message = (f"exchange with upstream {self.where} did not finish within the "
                       f"{total:g}s total timeout")
        self._fail(UpstreamTimeout(message, phase=self.phase))

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None:
            self.error = error
        self.abort()
        self._wake()

    def _stop_timer(self) -> None:
        timer = self.timer
        if timer is not None:
            self.timer = None
            timer.cancel()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)
