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


async def test_the_whole_drain_is_bounded_by_one_timeout(config_dir: Path,
                                                         upstream_url: str) -> None:
    """aiohttp alone waits its shutdown_timeout for handlers and then as long again for the
    cancelled ones (2.0 s for 1 s before the shared deadline): streams that never end and a
    slow request are cut at VPIPE_SHUTDOWN_TIMEOUT, and their clients see the connection end."""
    write_resources(config_dir, [
        pipeline("fake", {"family": "openai-compatible", "baseUrl": upstream_url}),
        route("all", ["*"], "fake"),
    ])
    timeout = 1.0
    async with running_proxy(config_dir, shutdown_timeout=timeout) as server, \
            aiohttp.ClientSession() as session:

        async def consume(model: str, stream: bool) -> None:
            async with session.post(server.url + "/v1/chat/completions",
                                    json={"model": model, "stream": stream, **CHAT}) as r:
                async for _ in r.content:
                    pass

        clients = [asyncio.create_task(consume("stall-1", True)),
                   asyncio.create_task(consume("slow-30", False))]
        runtime = server.reloader.current
        assert runtime is not None
        while runtime.in_flight < 2:
            await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await server.stop()
        took = loop.time() - started
        results = await asyncio.wait_for(asyncio.gather(*clients, return_exceptions=True), 5)
    assert took < timeout * 1.5, f"stop() took {took:.2f} s for a {timeout} s timeout"
    assert all(r is None or isinstance(r, aiohttp.ClientError) for r in results), results
    assert server.reloader.pool.live == {}
