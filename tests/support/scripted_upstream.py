"""An upstream whose next reply the test scripts byte for byte, for hostile-upstream tests.

By default it answers every protocol with a minimal valid reply (streamed when asked), so a
generated client body reaches conversion and back. A test sets `script` to answer otherwise:
any status, headers, body bytes, SSE chunks (sent as they are, so they may be truncated,
malformed or huge), an echo of the request headers, or a body of N bytes produced on the fly
(never held in memory).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Script:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # sent whole, Content-Type from headers or application/json
    chunks: list[bytes] | None = None  # sent one write each, as text/event-stream
    echo_headers: bool = False  # reply with the request's headers (as an upstream bug would)
    generate: int = 0  # a body of this many bytes, produced 1 MiB at a time
    delay: float = 0.0  # seconds to wait before answering


def _filler(n: int, unit: bytes) -> Iterator[bytes]:
    while n > 0:
        piece = unit if n >= len(unit) else unit[:n]
        n -= len(piece)
        yield piece


@dataclass
class ScriptedUpstream:
    script: Script | None = None
    sent_bytes: int = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        script = self.script
        if script is None:
            return await _valid(request, body)
        if script.delay:
            await asyncio.sleep(script.delay)
        if script.echo_headers:
            echoed = orjson.dumps({"error": {"message": f"headers: {dict(request.headers)}",
                                             "type": "invalid_request_error"}})
            return web.Response(status=script.status, body=echoed, headers=script.headers,
                                content_type="application/json")
        if script.generate:
            response = web.StreamResponse(status=script.status, headers={
                "Content-Type": script.headers.get("Content-Type", "application/json")})
            response.content_length = script.generate
            await response.prepare(request)
            unit = b"data: " + b"x" * (1024 * 1024) if "event-stream" in str(
                response.content_type) else b" " * (1024 * 1024)
            try:
                for piece in _filler(script.generate, unit):
                    await response.write(piece)
                    self.sent_bytes += len(piece)
            except ConnectionError:
                return response  # the proxy hung up, as it should past its cap
            return response
        if script.chunks is not None:
            response = web.StreamResponse(status=script.status, headers={
                "Content-Type": "text/event-stream", **script.headers})
            await response.prepare(request)
            for chunk in script.chunks:
                await response.write(chunk)
            await response.write_eof()
            return response
        headers = {"Content-Type": "application/json", **script.headers}
        return web.Response(status=script.status, body=script.body or b"", headers=headers)


async def _valid(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    path = request.path
    model = str(body.get("model"))
    stream = bool(body.get("stream"))
    if path.endswith("/embeddings"):
        return web.json_response({"object": "list", "model": model, "data": [
            {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "usage": {"prompt_tokens": 1, "total_tokens": 1}})
    if path.endswith("/count_tokens"):
        return web.json_response({"input_tokens": 3})
    if path.endswith("/messages"):
        if not stream:
            return web.json_response({
                "id": "msg_1", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}})
        events = [
            ("message_start", {"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 0}}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "ok"}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {
                "stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 1}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        return await _sse(request, [b"event: " + k.encode() + b"\ndata: " + orjson.dumps(v)
                                    + b"\n\n" for k, v in events])
    if path.endswith("/responses"):
        reply = {"id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
                 "model": model, "output": [{
                     "type": "message", "id": "msg_1", "role": "assistant",
                     "status": "completed", "content": [
                         {"type": "output_text", "text": "ok", "annotations": []}]}],
                 "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}}
        if not stream:
            return web.json_response(reply)
        events = [
            {"type": "response.created", "response": {**reply, "status": "in_progress",
                                                      "output": []}},
            {"type": "response.output_text.delta", "output_index": 0, "content_index": 0,
             "item_id": "msg_1", "delta": "ok"},
            {"type": "response.completed", "response": reply},
        ]
        return await _sse(request, [b"event: " + str(e["type"]).encode() + b"\ndata: "
                                    + orjson.dumps(e) + b"\n\n" for e in events])
    if not stream:
        return web.json_response({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model}
    return await _sse(request, [
        b"data: " + orjson.dumps({**chunk, "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": "ok"},
             "finish_reason": None}]}) + b"\n\n",
        b"data: " + orjson.dumps({**chunk, "choices": [
            {"index": 0, "delta": {}, "finish_reason": "stop"}]}) + b"\n\n",
        b"data: [DONE]\n\n"])


async def _sse(request: web.Request, chunks: list[bytes]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response
