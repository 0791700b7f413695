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
