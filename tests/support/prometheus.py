"""A real Prometheus server on 127.0.0.1 for tests, scraping real servers' /metrics every second.

The binary is `$VPIPE_TEST_PROMETHEUS` (which `hack/lib/prometheus.sh`, sourced by
`hack/test.sh`, sets), else `prometheus` on PATH, else the one that script unpacks into the
project's `.cache`. A missing binary fails the test: analysis is tested against the real thing
or not at all.

Start-up takes about 5-6 s, nearly all of it Prometheus' service discovery, which hands new
targets to the scrapers on a fixed 5 s tick (not configurable in 2.42). Share one server per
module where the tests allow it (a module-scoped fixture). The server dies with the thread that
started it even if the test process is killed (PR_SET_PDEATHSIG), so a crashed run leaves no
Prometheus behind; start it from the test's event loop, not from a short-lived thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

CACHED = Path(__file__).parents[2] / ".cache" / "prometheus" / "root" / "usr" / "bin" / "prometheus"
HOW_TO_GET_IT = ("run the suite with `bash hack/test.sh`, or `source hack/lib/prometheus.sh` "
                 "first (it unpacks Debian's prometheus package into .cache/)")
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=5)


def binary() -> str:
    """The Prometheus binary to run; fails the test when there is none."""
    configured = os.environ.get("VPIPE_TEST_PROMETHEUS")
    if configured:
        if os.access(configured, os.X_OK) and Path(configured).is_file():
            return configured
        pytest.fail(f"VPIPE_TEST_PROMETHEUS={configured} is not an executable file; "
                    f"unset it, or {HOW_TO_GET_IT}")
    for candidate in (shutil.which("prometheus"), str(CACHED)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"no Prometheus binary: {HOW_TO_GET_IT}")


@dataclasses.dataclass(frozen=True)
class Target:
    """A server to scrape: `host:port` of its /metrics, and labels added to its series."""

    address: str
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Prometheus:
    url: str

    async def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector `promql` gives now (its `result` list); asserts success."""
        async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session, session.post(
                self.url + "/api/v1/query", data={"query": promql}) as response:
            body = await response.json()
        assert body["status"] == "success", body
        assert body["data"]["resultType"] == "vector", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def wait_for(self, promql: str, *, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Poll until `promql` returns data (a bounded deadline, never a fixed sleep).

        Put the condition in the query to wait for a value: `sum(x) == 7` has data only once
        the sum is 7.
        """
        deadline = time.monotonic() + timeout
        while True:
            result = await self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"no data for {promql} from {self.url} within {timeout}s")
            await asyncio.sleep(0.2)


@asynccontextmanager
async def running_prometheus(targets: Sequence[Target], *,
                             startup_timeout: float = 30.0) -> AsyncIterator[Prometheus]:
    """Start Prometheus, wait until it is ready and has scraped every target once; stop it.

    Each target is scraped every second at /metrics, with its labels added to its series.
    Stopping is SIGTERM, then SIGKILL after 10 s; it happens however the block is left.
    """
    executable = binary()
    with tempfile.TemporaryDirectory(prefix="vpipe-prometheus-") as workdir:
        config = Path(workdir) / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "1s"},
            "scrape_configs": [{
                "job_name": "vpipe",
                "static_configs": [{"targets": [t.address], "labels": dict(t.labels)}
                                   for t in targets],
            }],
        }))
        log = Path(workdir) / "prometheus.log"
        for attempt in range(3):
            process, server = await _start(executable, config, log, workdir)
            try:
                await _wait_ready(server, process, log, expected=len(targets),
                                  timeout=startup_timeout)
            except _PortTaken:
                await _stop(process)  # it has exited; reaps it
                if attempt == 2:
                    raise AssertionError(f"prometheus: no free port after 3 tries:\n"
                                         f"{_tail(log)}") from None
                continue
            except BaseException:
                await _stop(process)
                raise
            break
        try:
            yield server
        finally:
            await _stop(process)


class _PortTaken(Exception):
    """Another process took the port between our probe and Prometheus' bind."""


async def _start(executable: str, config: Path, log: Path,
                 workdir: str) -> tuple[asyncio.subprocess.Process, Prometheus]:
    port = free_port()
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            executable, f"--config.file={config}", f"--storage.tsdb.path={workdir}/data",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
            stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=output,
            preexec_fn=_die_with_parent())
    return process, Prometheus(f"http://127.0.0.1:{port}")


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, SIGKILL after 10 s; even when cancelled while waiting, it is killed."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            pass
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await asyncio.shield(process.wait())


async def _wait_ready(server: Prometheus, process: asyncio.subprocess.Process, log: Path, *,
                      expected: int, timeout: float) -> None:
    """Until /-/ready answers and every one of the `expected` targets is up (scraped once)."""
    deadline = time.monotonic() + timeout
    seen = "no answer"
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
        while True:
            if process.returncode is not None:
                if "address already in use" in _tail(log):
                    raise _PortTaken
                raise AssertionError(f"prometheus exited {process.returncode}:\n{_tail(log)}")
            try:
                async with session.get(server.url + "/-/ready") as ready:
                    seen = f"/-/ready: HTTP {ready.status}"
                if ready.status == 200:
                    async with session.get(server.url + "/api/v1/targets") as response:
                        active = (await response.json())["data"]["activeTargets"]
                    seen = "targets: " + ", ".join(
                        f"{t['scrapeUrl']} {t['health']} {t['lastError']}".strip()
                        for t in active) if active else "no targets yet"
                    if len(active) == expected and all(t["health"] == "up" for t in active):
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus at {server.url} did not scrape every target "
                                     f"within {timeout}s ({seen}):\n{_tail(log)}")
            await asyncio.sleep(0.1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tail(log: Path, limit: int = 2000) -> str:
    try:
        return log.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn making the child get SIGKILL when this process dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the forked child
    parent = os.getpid()

    def arm() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return arm
