"""Atomic reload while serving.

Aspects: zero failed requests while the config changes under concurrent traffic; an invalid
config is rejected and the last good one keeps serving, visibly (/readyz, metrics); a request in
flight finishes on the runtime it started on, whose unused instances close only afterwards;
unchanged instances are reused; a mounted ConfigMap's `..data` symlink swap is picked up; a
document of an unknown configVersion is refused.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.support.proxy import (
    pipeline,
    route,
    running_proxy,
    wait_for_revision,
    write_resources,
)
from vpipe_api.loading import parse_resources
from vpipe_api.render import render
from vpipe_proxy.server import ProxyServer
from vpipe_proxy.settings import Settings
from vpipe_proxy.sources import DocumentFileSource

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


async def wait_for_attempts(server: ProxyServer, attempts: int, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while server.reloader.status.attempts < attempts:
        assert asyncio.get_running_loop().time() < deadline, "no reload attempt seen"
        await asyncio.sleep(0.02)


def mock_config(models: list[str], mapping: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [pipeline("mock-v1", {"family": "mock", "modelMap": mapping or {}}),
            route("main", models, "mock-v1")]


async def test_zero_failed_requests_across_reloads(config_dir: Path) -> None:
    write_resources(config_dir, mock_config(["m-*"]))
    async with running_proxy(config_dir) as server:
        statuses: list[int] = []
        stop = asyncio.Event()

        async def hammer(session: aiohttp.ClientSession) -> None:
            while not stop.is_set():
                async with session.post(server.url + "/v1/chat/completions",
                                        json={"model": "m-1", **CHAT}) as r:
                    await r.read()
                    statuses.append(r.status)

        async with aiohttp.ClientSession() as session:
            workers = [asyncio.create_task(hammer(session)) for _ in range(8)]
            revision = server.reloader.current.revision if server.reloader.current else None
            for i in range(6):
                write_resources(config_dir, mock_config(["m-*", f"extra-{i}"], {"m-1": f"v{i}"}))
                revision = await wait_for_revision(server, revision)
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.gather(*workers)
        assert len(statuses) > 50
        assert set(statuses) == {200}
        assert server.reloader.status.failures == 0
        # Each reload replaced the mock instance (its modelMap changed); old ones were closed.
        await asyncio.sleep(0.1)
        assert len(server.reloader.pool.live) == 1


async def test_invalid_config_is_rejected_and_last_good_keeps_serving(config_dir: Path) -> None:
    write_resources(config_dir, mock_config(["m-*"]))
    async with running_proxy(config_dir) as server:
        good = server.reloader.current
        assert good is not None
        attempts = server.reloader.status.attempts
        write_resources(config_dir, [*mock_config(["m-*"]), route("broken", ["x"], "missing")],
                        name="vpipe.yaml")
        await wait_for_attempts(server, attempts + 1)
        assert server.reloader.current is good
        async with aiohttp.ClientSession() as session:
            async with session.post(server.url + "/v1/chat/completions",
                                    json={"model": "m-1", **CHAT}) as r:
                assert r.status == 200
            async with session.get(server.admin_url + "/readyz") as r:
                assert r.status == 200
                ready = await r.json()
            async with session.get(server.admin_url + "/metrics") as r:
                metrics = await r.text()
        assert ready["revision"] == good.revision
        assert ready["lastReload"]["ok"] is False
        assert "Route/default/broken spec.pipeline" in ready["lastReload"]["error"]
        assert 'vpipe_config_reloads_total{result="failed"} 1.0' in metrics


async def test_in_flight_request_finishes_on_its_runtime(
    config_dir: Path, upstream_url: str
) -> None:
    write_resources(config_dir, [
        pipeline("fake", {"family": "openai-compatible", "baseUrl": upstream_url}),
        route("all", ["*"], "fake"),
    ])
    async with running_proxy(config_dir) as server, aiohttp.ClientSession() as session:
        old = server.reloader.current
        assert old is not None
        (fake_key,) = old.instance_keys
        slow = asyncio.create_task(session.post(server.url + "/v1/chat/completions",
                                                json={"model": "slow-0.5", **CHAT}))
        while old.in_flight == 0:
            await asyncio.sleep(0.01)
        write_resources(config_dir, mock_config(["*"]))
        await wait_for_revision(server, old.revision)
        assert fake_key in server.reloader.pool.live  # still serving the slow request
        response = await slow
        assert response.status == 200
        assert (await response.json())["choices"][0]["message"]["content"] == "fake says: hi"
        await asyncio.sleep(0.05)
        assert fake_key not in server.reloader.pool.live
        async with session.post(server.url + "/v1/chat/completions",
                                json={"model": "slow-0.5", **CHAT}) as r:
            assert (await r.json())["choices"][0]["message"]["content"].startswith("Mock reply")


async def test_unchanged_instances_are_reused(config_dir: Path) -> None:
    write_resources(config_dir, mock_config(["a"]))
    async with running_proxy(config_dir) as server:
        first = server.reloader.current
        assert first is not None
        instance = next(iter(server.reloader.pool.live.values()))
        write_resources(config_dir, mock_config(["a", "b"]))
        await wait_for_revision(server, first.revision)
        assert list(server.reloader.pool.live.values()) == [instance]


def _configmap_dir(root: Path, docs: list[dict[str, Any]], stamp: str) -> None:
    """Lay out a directory the way the kubelet mounts a ConfigMap, swapping ..data atomically."""
    resources = parse_resources(docs)
    document = render(resources.pipelines, resources.routes)
    version = root / f"..{stamp}"
    version.mkdir()
    (version / "config.json").write_bytes(document.to_json())
    tmp = root / "..data_tmp"
    tmp.symlink_to(version.name)
    os.replace(tmp, root / "..data")
    link = root / "config.json"
    if not link.is_symlink():
        link.symlink_to("..data/config.json")


async def test_configmap_symlink_swap_is_picked_up(tmp_path: Path) -> None:
    root = tmp_path / "mount"
    root.mkdir()
    _configmap_dir(root, mock_config(["a"]), "2026_01")
    settings = Settings(port=0, admin_port=0, poll_interval=0.05)
    server = ProxyServer(settings, DocumentFileSource(root), environ={})
    await server.start()
    try:
        first = server.reloader.current
        assert first is not None
        _configmap_dir(root, mock_config(["a", "b"]), "2026_02")
        await wait_for_revision(server, first.revision)
        assert server.reloader.current is not None
        assert server.reloader.current.router.route("b", "openai-chat", "", {}) is not None
    finally:
        await server.stop()


async def test_unknown_config_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    resources = parse_resources(mock_config(["a"]))
    path.write_bytes(render(resources.pipelines, resources.routes).to_json())
    server = ProxyServer(Settings(port=0, admin_port=0, poll_interval=0.05),
                         DocumentFileSource(path), environ={})
    await server.start()
    try:
        good = server.reloader.current
        data = orjson.loads(path.read_bytes())
        data["configVersion"] = "vpipe.io/config.v9"
        path.write_bytes(orjson.dumps(data))
        await wait_for_attempts(server, 2)
        assert server.reloader.current is good
        error = server.reloader.status.error or ""
        assert "vpipe.io/config.v9" in error and "vpipe.io/config.v1" in error
    finally:
        await server.stop()


async def test_first_config_invalid_fails_start(config_dir: Path) -> None:
    write_resources(config_dir, [route("broken", ["x"], "missing")])
    with pytest.raises(Exception, match="Pipeline 'missing' does not exist"):
        async with running_proxy(config_dir):
            pass


async def test_waits_unready_for_a_first_config_when_asked(tmp_path: Path) -> None:
    mount = tmp_path / "mount"
    mount.mkdir()
    settings = Settings(port=0, admin_port=0, poll_interval=0.05, wait_for_config=True)
    server = ProxyServer(settings, DocumentFileSource(mount), environ={})
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.admin_url + "/readyz") as r:
                assert r.status == 503
            async with session.post(server.url + "/v1/chat/completions",
                                    json={"model": "a", **CHAT}) as r:
                assert r.status == 503
                assert "no valid config" in (await r.json())["error"]["message"]
            _configmap_dir(mount, mock_config(["a"]), "2026_01")
            await wait_for_revision(server, None)
            async with session.post(server.url + "/v1/chat/completions",
                                    json={"model": "a", **CHAT}) as r:
                assert r.status == 200
    finally:
        await server.stop()


async def test_live_config_is_frozen_out_of_full_collections(config_dir: Path) -> None:
    import gc

    write_resources(config_dir, mock_config(["a"]))
    async with running_proxy(config_dir) as server:
        assert gc.get_freeze_count() > 0
        first = server.reloader.current
        write_resources(config_dir, mock_config(["a", "b"]))
        await wait_for_revision(server, first.revision if first else None)
    gc.unfreeze()
