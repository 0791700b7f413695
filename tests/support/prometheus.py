"""A real Prometheus server on 127.0.0.1 for tests, scraping real servers' /metrics every second.

The binary comes from `hack/lib/prometheus.sh` (`VPIPE_TEST_PROMETHEUS`, which `hack/test.sh`
sets), else PATH, else the project's `.cache`. A missing binary fails the test: analysis is
tested against the real thing or not at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.support.proxy import unused_port

CACHED = Path(__file__).parents[2] / ".cache" / "prometheus" / "root" / "usr" / "bin" / "prometheus"


def binary() -> str:
    for candidate in (os.environ.get("VPIPE_TEST_PROMETHEUS"), shutil.which("prometheus"),
                      str(CACHED) if CACHED.exists() else None):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("no Prometheus binary: run the suite with `bash hack/test.sh`, or "
                "`source hack/lib/prometheus.sh` first (it unpacks Debian's prometheus package "
                "into .cache/)")


@dataclasses.dataclass(frozen=True)
class Target:
    """A server to scrape: `host:port` of its /metrics, and labels added to its series."""

    address: str
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Prometheus:
    url: str

    async def query(self, promql: str) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as session, session.get(
                self.url + "/api/v1/query", params={"query": promql}) as response:
            body = await response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def wait_for(self, promql: str, *, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Poll until `promql` returns data (a bounded deadline, never a fixed sleep)."""
        deadline = time.monotonic() + timeout
        while True:
            result = await self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"no data for {promql} within {timeout}s")
            await asyncio.sleep(0.2)


@asynccontextmanager
async def running_prometheus(targets: Sequence[Target]) -> AsyncIterator[Prometheus]:
    """Start Prometheus, wait until it is ready and has scraped every target once, stop it."""
    executable = binary()
    with tempfile.TemporaryDirectory(prefix="vpipe-prometheus-") as workdir:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "vpipe",
                "static_configs": [{"targets": [t.address], "labels": dict(t.labels)}
                                   for t in targets],
            }],
        }
        path = Path(workdir) / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        port = unused_port()
        process = await asyncio.create_subprocess_exec(
            executable, f"--config.file={path}", f"--storage.tsdb.path={workdir}/data",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        server = Prometheus(f"http://127.0.0.1:{port}")
        try:
            await _wait_ready(server, process, expected=len(targets))
            yield server
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _wait_ready(server: Prometheus, process: asyncio.subprocess.Process, *,
                      expected: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            if process.returncode is not None:
                stderr = await process.stderr.read() if process.stderr else b""
                raise AssertionError(f"prometheus exited {process.returncode}: "
                                     f"{stderr.decode(errors='replace')[-2000:]}")
            try:
                async with session.get(server.url + "/api/v1/targets") as response:
                    if response.status == 200:
                        body = await response.json()
                        active = body["data"]["activeTargets"]
                        if len(active) == expected and all(t["health"] == "up" for t in active):
                            return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus at {server.url} did not scrape every target "
                                     f"within {timeout}s")
            await asyncio.sleep(0.1)
