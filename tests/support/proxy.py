"""Start real servers on 127.0.0.1 for functional tests: the fake upstream and the proxy."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from tests.support.fake_upstream import FakeUpstream
from vpipe_proxy.server import ProxyServer
from vpipe_proxy.settings import Settings
from vpipe_proxy.sources import ResourceFilesSource


@asynccontextmanager
async def running_upstream(fake: FakeUpstream) -> AsyncIterator[str]:
    """Serve `fake` on an ephemeral port; yields its base URL (with /v1)."""
    runner = web.AppRunner(fake.app(), handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


def unused_port() -> int:
    """A port nothing listens on right now (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_resources(directory: Path, docs: list[dict[str, Any]], name: str = "vpipe.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    # Atomic, as editors and kubectl cp are not: the proxy must never see half a file here.
    staging = directory / f".{name}.tmp"
    staging.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    os.replace(staging, path)
    return path


def pipeline(name: str, provider: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "vpipe.io/v1alpha1", "kind": "Pipeline", "metadata": {"name": name},
            "spec": {"modules": [{"type": "provider", "name": "upstream", "provider": provider}]}}


def route(name: str, models: list[str], pipeline_name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "vpipe.io/v1alpha1", "kind": "Route", "metadata": {"name": name},
            "spec": {"match": {"models": models, **spec.pop("match", {})},
                     "pipeline": pipeline_name, **spec}}


@asynccontextmanager
async def running_proxy(
    config_dir: Path,
    *,
    environ: Mapping[str, str] | None = None,
    **settings: Any,
) -> AsyncIterator[ProxyServer]:
    """The proxy in local mode on ephemeral ports, reading resources from `config_dir`."""
    values: dict[str, Any] = {"port": 0, "admin_port": 0, "poll_interval": 0.05,
                              "secrets_dir": str(config_dir / "no-secrets-here")}
    values.update(settings)
    server = ProxyServer(Settings(**values), ResourceFilesSource([config_dir]),
                         environ=environ or {})
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def wait_for_revision(server: ProxyServer, old: str | None, timeout: float = 5) -> str:
    """Wait until the proxy serves a revision other than `old`; return it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        current = server.reloader.current
        if current is not None and current.revision != old:
            return current.revision
        await asyncio.sleep(0.02)
    raise AssertionError(f"revision stayed {old}")
