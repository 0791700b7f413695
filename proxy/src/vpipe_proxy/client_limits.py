"""A TCP site that caps the connections open at once on a port.

aiohttp bounds header sizes and (through keepalive_timeout) idle and slow-head connections, but
not how many sockets clients may hold: without a cap, many slow clients exhaust the process's
file descriptors and every provider's connection pool with them. Over the cap a new connection
gets a short 503 and is closed at once, so a socket is held only for the time of one write.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import orjson
from aiohttp import web

_BODY: Final = orjson.dumps({"error": {
    "message": "The proxy has too many open client connections "
               "(VPIPE_MAX_CLIENT_CONNECTIONS); retry shortly.",
    "type": "service_unavailable_error", "param": None, "code": "too_many_connections"}})
_REFUSAL: Final = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                   b"Retry-After: 1\r\nConnection: close\r\n"
                   + f"Content-Length: {len(_BODY)}\r\n\r\n".encode() + _BODY)


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_REFUSAL)
        transport.close()


class LimitedTCPSite(web.TCPSite):
    """`web.TCPSite` with at most `max_connections` client connections open."""

    __slots__ = ("_max_connections",)

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *,
                 max_connections: int, **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._max_connections = max_connections

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        most = self._max_connections

        def protocol() -> asyncio.Protocol:
            if most and len(server.connections) >= most:
                return _Refused()
            return server()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            protocol, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
