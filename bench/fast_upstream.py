"""A fast fake OpenAI upstream: raw asyncio Protocol + httptools on uvloop, no web framework.

`POST .../chat/completions` answers a fixed ~300-byte `chat.completion` JSON with keep-alive;
with `"stream": true` in the body it answers an SSE stream of 5 `chat.completion.chunk` events
and `data: [DONE]`, the first event together with the response head and the rest
`CHUNK_INTERVAL` apart (a real model's tokens arrive over time; sending them all in one write
would make "first chunk" mean "whole response").

Run as a script it prints `PORT <n>` once listening; `UpstreamProcess` starts it that way,
pinned to a core, so it never shares the proxy's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
from contextlib import suppress
from typing import Final, cast

import httptools
import orjson

CHUNK_INTERVAL: Final = 0.002  # seconds between streamed events after the first

_COMPLETION: Final = orjson.dumps({
    "id": "chatcmpl-bench0000000000000000000",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "bench-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there, friend!"},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    "system_fingerprint": "fp_bench",
})
_RESPONSE: Final = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(_COMPLETION)).encode() + b"\r\n\r\n" + _COMPLETION
)
_NOT_FOUND: Final = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
_STREAM_HEAD: Final = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def _frame(data: bytes) -> bytes:
    """One HTTP/1.1 chunk holding one SSE event."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _event(content: str | None, finish: str | None) -> bytes:
    delta = {"content": content} if content is not None else {}
    return b"data: " + orjson.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
        "model": "bench-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }) + b"\n\n"


_STREAM_FRAMES: Final = (
    [_frame(_event(word, None)) for word in ("Hello", " there", ",", " friend")]
    + [_frame(_event(None, "stop")), _frame(b"data: [DONE]\n\n") + b"0\r\n\r\n"]
)
COMPLETION_BYTES: Final = len(_COMPLETION)
STREAM_EVENTS: Final = 5  # chunk events before [DONE]


class _Handler(asyncio.Protocol):
    """One client connection; answers each request as soon as it is complete."""

    __slots__ = ("body", "loop", "parser", "transport", "url")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []
        self.url = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        transport = self.transport
        body = b"".join(self.body)
        url, self.url, self.body = self.url, b"", []
        if transport is None:
            return
        if self.parser.get_method() != b"POST" or not url.endswith(b"/chat/completions"):
            transport.write(_NOT_FOUND)
        elif b'"stream":true' in body or b'"stream": true' in body:
            transport.write(_STREAM_HEAD + _STREAM_FRAMES[0])
            self.loop.call_later(CHUNK_INTERVAL, self._stream_rest, transport, 1)
        else:
            transport.write(_RESPONSE)
        if not self.parser.should_keep_alive():
            transport.close()

    def _stream_rest(self, transport: asyncio.Transport, index: int) -> None:
        if transport.is_closing():
            return
        transport.write(_STREAM_FRAMES[index])
        if index + 1 < len(_STREAM_FRAMES):
            self.loop.call_later(CHUNK_INTERVAL, self._stream_rest, transport, index + 1)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Handler(loop), "127.0.0.1", port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--core", type=int, default=None, help="pin to this CPU core")
    args = parser.parse_args()
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port))
    else:
        with suppress(KeyboardInterrupt):
            uvloop.run(serve(args.port))


class UpstreamProcess:
    """The fast upstream as a child process, pinned to `core`."""

    def __init__(self, core: int | None) -> None:
        command = [sys.executable, "-u", __file__]
        if core is not None:
            command += ["--core", str(core)]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"fast upstream did not start: {line!r}")
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


if __name__ == "__main__":
    main()
