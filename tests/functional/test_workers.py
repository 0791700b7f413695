"""`vpipe serve --workers 2`, run as a user runs it (a subprocess), with the openai SDK as client.

Aspects: both workers answer on the one client port and the one admin port counts them both;
a config change reaches both; SIGTERM drains streams in flight on both; a killed worker is
restarted, counted and shown on /readyz; workers outlive no supervisor; a config that cannot
load stops the start with the worker's message.

Which worker served a request shows in the supervisor's /metrics (each worker's series carry
`worker="N"`). SO_REUSEPORT spreads connections by a hash of their addresses, so each request
goes out on a fresh connection, and enough of them that all landing on one worker (2^-19 for
20) does not happen.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from openai import AsyncOpenAI
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy import pipeline, route, unused_port, write_resources

REQUESTS = 20
MESSAGES: Any = [{"role": "user", "content": "hi"}]


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    port: int
    admin_port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    async def admin(self, path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{self.admin_port}{path}") as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    async def readyz(self) -> dict[str, Any]:
        return dict((await self.admin("/readyz"))[1])

    async def per_worker(self, sample: str, **labels: str) -> dict[str, float]:
        """Value of `sample` summed per worker label, over series matching `labels`."""
        _, text = await self.admin("/metrics")
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                    out[s.labels["worker"]] = out.get(s.labels["worker"], 0.0) + s.value
        return out

    async def wait(self, check: Any, what: str, limit: float = 15.0) -> Any:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.1)
        raise AssertionError(f"{what} did not happen in {limit} s; log:\n{self.output()}")


def _start(config_dir: Path, tmp_path: Path, extra: tuple[str, ...],
           env: dict[str, str]) -> Gateway:
    port, admin_port = unused_port(), unused_port()
    log = tmp_path / "vpipe.log"
    environ = {**os.environ, "VPIPE_POLL_INTERVAL": "0.1", "VPIPE_SHUTDOWN_TIMEOUT": "10",
               "VPIPE_SECRETS_DIR": str(tmp_path / "no-secrets"), **env}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vpipe_cli.main", "serve", "-f", str(config_dir), "--workers",
             "2", "--port", str(port), "--admin-port", str(admin_port), *extra],
            stdout=out, stderr=subprocess.STDOUT, env=environ)
    return Gateway(proc, port, admin_port, log)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@asynccontextmanager
async def gateway(config_dir: Path, tmp_path: Path, *extra: str,
                  **env: str) -> AsyncIterator[Gateway]:
    gw = _start(config_dir, tmp_path, extra, env)
    proc = gw.proc
    try:
        async def ready() -> bool:
            assert proc.poll() is None, f"vpipe serve exited:\n{gw.output()}"
            try:
                return (await gw.admin("/readyz"))[0] == 200
            except aiohttp.ClientError:
                return False

        await gw.wait(ready, "readiness", 30)
        yield gw
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def resources(upstream_url: str, models: list[str], name: str = "all") -> list[dict[str, Any]]:
    return [pipeline("fake", {"family": "openai-compatible", "baseUrl": upstream_url}),
            route(name, models, "fake")]


async def ask(gw: Gateway, model: str) -> str:
    """One request on a connection of its own."""
    async with AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0) as client:
        answer = await client.chat.completions.create(model=model, messages=MESSAGES)
    return answer.choices[0].message.content or ""


async def test_both_workers_answer_on_one_port_and_one_admin_port_counts_both(
        config_dir: Path, upstream_url: str, tmp_path: Path) -> None:
    write_resources(config_dir, resources(upstream_url, ["*"]))
    async with gateway(config_dir, tmp_path) as gw:
        for _ in range(REQUESTS):
            assert await ask(gw, "m") == "fake says: hi"
        counts = await gw.per_worker("vpipe_requests_total", route="all", status="200")
        assert set(counts) == {"0", "1"} and all(v > 0 for v in counts.values()), counts
        assert sum(counts.values()) == REQUESTS
        ready = await gw.readyz()
        assert ready["converged"] and ready["revision"]
        assert [w["state"] for w in ready["workers"]] == ["running", "running"]
        assert len({w["pid"] for w in ready["workers"]} - {gw.proc.pid}) == 2
        assert await gw.per_worker("vpipe_worker_up") == {"0": 1.0, "1": 1.0}
        status, explained = await gw.admin("/debug/explain?model=m&worker=1")
        assert (status, explained["route"]) == (200, "all")
        status, error = await gw.admin("/debug/config?worker=2")
        assert status == 400 and "from 0 to 1" in error["error"]


async def test_a_config_change_reaches_both_workers(
        config_dir: Path, upstream_url: str, tmp_path: Path) -> None:
    write_resources(config_dir, resources(upstream_url, ["old-*"]))
    async with gateway(config_dir, tmp_path) as gw:
        old = (await gw.readyz())["revision"]
        write_resources(config_dir, resources(upstream_url, ["new-*"], name="second"))

        async def moved() -> bool:
            ready = await gw.readyz()
            return bool(ready["converged"] and ready["revision"] not in (None, old)
                        and all(w["revision"] == ready["revision"] for w in ready["workers"]))

        await gw.wait(moved, "both workers on the new revision")
        for _ in range(REQUESTS):
            assert await ask(gw, "new-x") == "fake says: hi"
        counts = await gw.per_worker("vpipe_requests_total", route="second", status="200")
        assert set(counts) == {"0", "1"}, counts


class _OneConnection(asyncio.Protocol):
    """Accepts one connection, then stops listening: one worker warms up, the next cannot."""

    def __init__(self, servers: list[asyncio.Server]) -> None:
        self.servers = servers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.servers[0].close()


async def test_workers_that_part_on_a_reload_are_resynced(
        config_dir: Path, fake: FakeUpstream, upstream_url: str, tmp_path: Path) -> None:
    write_resources(config_dir, resources(upstream_url, ["*"]))
    loop = asyncio.get_running_loop()
    async with gateway(config_dir, tmp_path) as gw:
        for attempt in range(3):  # two workers reloading within the same ms both get in
            servers: list[asyncio.Server] = []
            servers.append(await loop.create_server(
                lambda servers=servers: _OneConnection(servers), "127.0.0.1", 0))
            port = servers[0].sockets[0].getsockname()[1]
            write_resources(config_dir, resources(f"http://127.0.0.1:{port}/v1", ["*"],
                                                  name=f"try{attempt}"))

            async def parted() -> dict[str, Any] | None:
                status, ready = await gw.admin("/readyz")
                return ready if status == 200 and not ready["converged"] else None

            try:
                ready = await gw.wait(parted, "a worker that could not warm up", 3)
                break
            except AssertionError:
                servers[0].close()
        else:
            raise AssertionError(f"no worker was ever turned away; log:\n{gw.output()}")
        # Each serves a good config, but not one the operator's rollout gate may count on.
        assert ready["revision"] is None and ready["lastReload"]["ok"] is False
        assert "warm-up failed" in ready["lastReload"]["error"]
        runner = web.AppRunner(fake.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async def rejoined() -> dict[str, Any] | None:
                _, ready = await gw.admin("/readyz")
                return ready if ready["converged"] and ready["revision"] else None

            ready = await gw.wait(rejoined, "the resync")
            assert ready["resyncs"] >= 1 and ready["lastReload"]["ok"]
            assert {w["revision"] for w in ready["workers"]} == {ready["revision"]}
            _, text = await gw.admin("/metrics")
            assert f"vpipe_worker_resyncs_total {float(ready['resyncs'])}" in text
        finally:
            await runner.cleanup()


async def test_sigterm_drains_streams_in_flight_on_every_worker(
        config_dir: Path, fake: FakeUpstream, upstream_url: str, tmp_path: Path) -> None:
    write_resources(config_dir, resources(upstream_url, ["*"]))
    async with gateway(config_dir, tmp_path) as gw:
        clients: list[AsyncOpenAI] = []
        streams: list[Any] = []
        try:
            # Open held streams until both workers have sent a first chunk of one.
            while len(await gw.per_worker("vpipe_stream_first_chunk_seconds_count")) < 2:
                assert len(streams) < 16, "every stream landed on one worker"
                client = AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
                clients.append(client)
                stream = await client.chat.completions.create(model="hold", messages=MESSAGES,
                                                              stream=True)
                first = await stream.__anext__()
                assert first.choices[0].delta.content == "fake"
                streams.append(stream)
            gw.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)  # the workers are draining now
            assert gw.proc.poll() is None, "the supervisor quit with streams in flight"
            fake.release.set()
            for stream in streams:
                rest = [c.choices[0].delta.content async for c in stream if c.choices]
                assert "".join(r or "" for r in rest) == " says: hi"
        finally:
            for client in clients:
                await client.close()
        assert await asyncio.to_thread(gw.proc.wait, 15) == 0, gw.output()
        assert "still running" not in gw.output()


async def test_a_killed_worker_is_restarted_counted_and_reported(
        config_dir: Path, upstream_url: str, tmp_path: Path) -> None:
    write_resources(config_dir, resources(upstream_url, ["*"]))
    async with gateway(config_dir, tmp_path) as gw:
        before = (await gw.readyz())["workers"][1]
        os.kill(before["pid"], signal.SIGKILL)

        async def restarted() -> dict[str, Any] | None:
            status, ready = await gw.admin("/readyz")
            worker = ready["workers"][1]
            return ready if status == 200 and worker["restarts"] == 1 else None

        ready = await gw.wait(restarted, "the restart")
        worker = ready["workers"][1]
        assert worker["pid"] != before["pid"] and worker["state"] == "running"
        assert "killed by SIGKILL" in worker["lastExit"]
        assert ready["restarts"] == 1 and ready["workers"][0]["restarts"] == 0
        assert await gw.per_worker("vpipe_worker_restarts_total") == {"0": 0.0, "1": 1.0}
        assert "worker 1: pid" in gw.output() and "killed by SIGKILL" in gw.output()
        for _ in range(4):
            assert await ask(gw, "m") == "fake says: hi"
        # A supervisor killed outright takes its workers with it: they notice and exit.
        pids = [w["pid"] for w in ready["workers"]]
        gw.proc.kill()
        gw.proc.wait()

        async def gone() -> bool:
            return not any(_running(pid) for pid in pids)

        await gw.wait(gone, "the orphaned workers' exit", 10)


async def test_a_config_that_cannot_load_stops_the_start(config_dir: Path,
                                                         tmp_path: Path) -> None:
    write_resources(config_dir, [pipeline("p", {"family": "nope"}), route("r", ["*"], "p")])
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "vpipe_cli.main", "serve", "-f", str(config_dir),
                         "--workers", "2", "--port", str(unused_port()), "--admin-port",
                         str(unused_port())], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "vpipe serve: worker " in done.stderr and "unknown family 'nope'" in done.stderr


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_worker_count_is_refused(value: str, config_dir: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "vpipe_cli.main", "serve", "-f",
                           str(config_dir)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "VPIPE_WORKERS": value})
    assert done.returncode == 1
    assert f"Invalid VPIPE_WORKERS='{value}'" in done.stderr and "'auto'" in done.stderr
