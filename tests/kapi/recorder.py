"""A recording reverse proxy in front of the API server: which requests did a client make?

kube-apiserver's audit log would tell, but kapi starts it without one; this sits between one
client (the operator) and the API server instead, on 127.0.0.1 over plain HTTP, forwards every
request unchanged (over TLS, checking the server's certificate), streams the answers (watches
included) and keeps (method, path, query) of each request. It runs in its own thread and event
loop so the synchronous tests can use it.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

HOP_BY_HOP = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "te", "trailer",
                        "upgrade", "proxy-authorization", "accept-encoding", "content-length"})
DROP_FROM_ANSWER = HOP_BY_HOP | {"content-encoding"}


class Recorder:
    def __init__(self, upstream: str, ca: Path) -> None:
        self.upstream = upstream
        self.ssl = ssl.create_default_context(cafile=str(ca))
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="api-recorder", daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the recording proxy did not start")
        return self

    def __exit__(self, *_: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None),
                                         auto_decompress=False) as session:
            app = web.Application()

            async def forward(request: web.Request) -> web.StreamResponse:
                return await self._forward(session, request)

            app.router.add_route("*", "/{tail:.*}", forward)
            runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            self.url = f"http://127.0.0.1:{port}"
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()

    async def _forward(self, session: aiohttp.ClientSession,
                       request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.query)))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        async with session.request(request.method, self.upstream + request.path_qs,
                                   data=body or None, headers=headers, ssl=self.ssl) as answer:
            response = web.StreamResponse(status=answer.status, headers={
                k: v for k, v in answer.headers.items() if k.lower() not in DROP_FROM_ANSWER})
            await response.prepare(request)
            try:
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
            except (ConnectionResetError, aiohttp.ClientError):
                return response  # the client or the server hung up on a watch
            await response.write_eof()
            return response

    def calls(self) -> list[tuple[str, str, dict[str, Any]]]:
        return list(self.requests)
