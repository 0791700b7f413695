"""The admin port: health, readiness, metrics, debug views; secrets never shown.

Aspects: /healthz and /readyz answers; /metrics counts requests by route, pipeline, module and
status and records stream first-chunk times; /debug/config shows the loaded document with
references only; /debug/explain says which route takes a request and why the others did not;
/debug/instances lists live instances with health and their pools' figures as of the request;
/readyz and /debug/config show the background tasks' failures.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import orjson
import pytest
from openai import AsyncOpenAI

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy import pipeline, route, running_proxy, write_resources
from vpipe_proxy.server import ProxyServer

SECRET = "sk-admin-test-secret-value"


@pytest.fixture
async def proxy(config_dir: Path, upstream_url: str) -> AsyncIterator[ProxyServer]:
    write_resources(config_dir, [
        pipeline("mock-v1", {"family": "mock"}),
        pipeline("fake-v1", {"family": "openai-compatible", "baseUrl": upstream_url,
                             "modelMap": {"fake-big-*": "big", "fake-hold": "hold",
                                          "*": "default"},
                             "credentials": {"secretRef": {"name": "fake", "key": "token"}},
                             "headers": {"x-custom-token-id": "not-secret-but-redacted"}}),
        route("mock", ["mock-*"], "mock-v1", priority=5),
        route("fake", ["fake-*"], "fake-v1"),
    ])
    async with running_proxy(config_dir, environ={"VPIPE_SECRET_FAKE_TOKEN": SECRET}) as server:
        yield server


async def get(server: ProxyServer, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(server.admin_url + path) as r:
        return r.status, await r.text()


async def test_health_and_readiness(proxy: ProxyServer) -> None:
    assert (await get(proxy, "/healthz"))[0] == 200
    status, text = await get(proxy, "/readyz")
    assert status == 200
    assert proxy.reloader.current is not None
    assert proxy.reloader.current.revision in text


async def test_metrics_count_requests_by_route_and_status(proxy: ProxyServer) -> None:
    async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0) as client:
        await client.chat.completions.create(model="mock-a",
                                             messages=[{"role": "user", "content": "x"}])
        stream = await client.chat.completions.create(
            model="fake-a", messages=[{"role": "user", "content": "x"}], stream=True)
        async for _ in stream:
            pass
        with contextlib.suppress(openai.NotFoundError):
            await client.chat.completions.create(model="nope",
                                                 messages=[{"role": "user", "content": "x"}])
    _, text = await get(proxy, "/metrics")
    assert ('vpipe_requests_total{module="upstream",pipeline="mock-v1",protocol="openai-chat",'
            'route="mock",status="200",version="v1"} 1.0') in text
    assert 'route="-",status="404",version="-"} 1.0' in text
    assert 'vpipe_stream_first_chunk_seconds_count{pipeline="fake-v1",route="fake"} 1.0' in text
    assert "vpipe_live_instances 2.0" in text
    assert f'vpipe_config_info{{revision="{proxy.reloader.current.revision}"}} 1.0' in text  # type: ignore[union-attr]


async def test_debug_config_holds_references_only(proxy: ProxyServer) -> None:
    status, text = await get(proxy, "/debug/config")
    assert status == 200
    assert SECRET not in text
    assert '"name": "fake"' in text and '"key": "token"' in text
    assert "not-secret-but-redacted" not in text


async def test_debug_explain(proxy: ProxyServer) -> None:
    status, text = await get(proxy, "/debug/explain?model=fake-1")
    assert status == 200
    assert '"route": "fake"' in text
    assert "model matches none of mock-*" in text
    assert '"upstreamModel":{"provider":"upstream","model":"default","modelMapKey":"*"}' in text \
        .replace(" ", "").replace("\n", "")
    status, text = await get(proxy, "/debug/explain?model=fake-big-2")
    assert '"model": "big"' in text and '"modelMapKey": "fake-big-*"' in text
    status, text = await get(proxy, "/debug/explain?model=zzz")
    assert '"route": null' in text and "No route takes model 'zzz'" in text
    assert (await get(proxy, "/debug/explain"))[0] == 400
    assert (await get(proxy, "/debug/explain?model=a&protocol=smtp"))[0] == 400


async def test_debug_instances(proxy: ProxyServer) -> None:
    status, text = await get(proxy, "/debug/instances")
    assert status == 200
    assert "MockProvider" in text and "HTTPProvider" in text
    assert SECRET not in text


async def test_debug_instances_shows_live_pool_figures(proxy: ProxyServer,
                                                       fake: FakeUpstream) -> None:
    """The figures are read when asked, not frozen when the instance started."""

    def fake_pool(text: str) -> dict[str, int]:
        (entry,) = [v for v in orjson.loads(text).values() if v["type"] == "HTTPProvider"]
        pool: dict[str, int] = entry["pool"]
        return pool

    before = fake_pool((await get(proxy, "/debug/instances"))[1])
    async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="fake-hold", messages=[{"role": "user", "content": "x"}], stream=True)
        await fake.holding.wait()
        during = fake_pool((await get(proxy, "/debug/instances"))[1])
        fake.release.set()
        async for _ in stream:
            pass
    after = fake_pool((await get(proxy, "/debug/instances"))[1])
    assert during["in_use"] == before["in_use"] + 1
    assert after["in_use"] == before["in_use"] and after["idle"] >= 1
    assert during["opened_total"] >= 1


async def test_readiness_and_config_show_background_tasks(proxy: ProxyServer) -> None:
    ready = orjson.loads((await get(proxy, "/readyz"))[1])
    assert ready["backgroundTasks"]["config-watcher"]["failures"] == 0
    config = orjson.loads((await get(proxy, "/debug/config"))[1])
    assert config["status"]["lastReload"]["ok"] is True
    assert "config-watcher" in config["status"]["backgroundTasks"]
