"""Graceful shutdown: a request in flight when the proxy is told to stop still completes.

Aspects: stop() waits for in-flight non-streaming and streaming requests, then closes every
module instance; new connections are refused once stopping began.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.support.proxy import pipeline, route, running_proxy, write_resources

CHAT = {"messages": [{"role": "user", "content": "bye"}]}


async def test_in_flight_requests_finish_on_shutdown(config_dir: Path, upstream_url: str) -> None:
    write_resources(config_dir, [
        pipeline("fake", {"family": "openai-compatible", "baseUrl": upstream_url}),
        route("all", ["*"], "fake"),
    ])
    async with running_proxy(config_dir) as server, aiohttp.ClientSession() as session:
        runtime = server.reloader.current
        assert runtime is not None
        slow = asyncio.create_task(session.post(server.url + "/v1/chat/completions",
                                                json={"model": "slow-0.5", **CHAT}))
        while runtime.in_flight == 0:
            await asyncio.sleep(0.01)
        stopping = asyncio.create_task(server.stop())
        response = await slow
        assert response.status == 200
        assert (await response.json())["choices"][0]["message"]["content"] == "fake says: bye"
        await stopping
        assert server.reloader.pool.live == {}


async def test_admin_port_can_listen_apart_from_the_client_port(config_dir: Path) -> None:
    """A sidecar keeps the client port on loopback and opens the admin port to kubelet probes."""
    write_resources(config_dir, [pipeline("m", {"family": "mock"}), route("all", ["*"], "m")])
    async with running_proxy(config_dir, admin_host="0.0.0.0") as server:
        client_host = server._runners[0].addresses[0][0]
        admin_host = server._runners[1].addresses[0][0]
        assert (client_host, admin_host) == ("127.0.0.1", "0.0.0.0")
        async with aiohttp.ClientSession() as session, \
                session.get(server.admin_url + "/healthz") as response:
            assert response.status == 200
