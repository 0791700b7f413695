"""`vpipe serve --workers N`: N proxy processes on one client port, one supervisor in front.

Python runs one request at a time per process, so a gateway pod with several CPUs runs several
workers. Each worker is a whole `ProxyServer` (its own config source, reloader, instances and
metrics) whose client socket is opened with SO_REUSEPORT on the same port: the kernel spreads
new connections over the workers' listeners, and nothing on the request path is shared or
locked. The supervisor (this module's `Supervisor`, the process `vpipe serve` runs as):

- holds the port (bound, never listening, so no other program can take it while workers
  restart) and starts the workers with the `spawn` method (a fresh interpreter: nothing of the
  supervisor's event loop or threads is inherited);
- owns the one admin port (`worker_admin`): /readyz and /metrics answer for all workers, by
  asking each worker's admin app on a private loopback port;
- restarts a worker that exits unexpectedly (with a growing pause while it keeps failing),
  logs it, counts it (`vpipe_worker_restarts_total`) and shows it on /readyz;
- keeps the workers on one config: each watches the same source and loads the same bytes, so
  they reach the same content-addressed revision on their own within one poll interval; a
  worker whose reload failed where the others' succeeded (an upstream it could not warm, say)
  is the one way they part, so when they serve different revisions for three checks in a row
  the supervisor sends every worker SIGHUP, which re-reads the source now (a worker already
  on it does nothing); counted in `vpipe_worker_resyncs_total`;
- on SIGTERM/SIGINT tells every worker to drain (each finishes its requests and streams
  within VPIPE_SHUTDOWN_TIMEOUT, as a single process does) and kills what is left after that.

A worker whose supervisor vanished (killed with SIGKILL) notices within a second and drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from vpipe_proxy import worker_admin
from vpipe_proxy.errors import VpipeProxyError
from vpipe_proxy.server import until_signalled
from vpipe_proxy.settings import Settings
from vpipe_proxy.worker_admin import SUPERVISOR, WorkerView
from vpipe_proxy.worker_process import SourceFactory, worker_main

log = logging.getLogger(__name__)

SPAWN = multiprocessing.get_context("spawn")
START_LIMIT = 300.0  # seconds a worker may take to load and warm its first config
ADMIN_TIMEOUT = 2.0  # seconds the supervisor waits for a worker's admin app
KILL_MARGIN = 2.0  # seconds past VPIPE_SHUTDOWN_TIMEOUT before stragglers are killed
RESYNC_AFTER = 3  # consecutive checks with different revisions before a resync
STABLE_AFTER = 10.0  # a worker that ran this long restarts without a pause


class WorkerStartError(VpipeProxyError):
    """A worker process did not get as far as serving."""


def describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (never listen) `host:port` with SO_REUSEPORT: it holds the port for the workers,
    and port 0 picks the one they all use."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise WorkerStartError(f"cannot bind the client port {host}:{port}: {e.strerror} (is "
                               "another program using it? set VPIPE_PORT or --port)") from e
    return sock


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


@dataclass
class Slot:
    """One worker position: the process in it now and what happened to earlier ones."""

    index: int
    process: BaseProcess | None = None
    admin_port: int | None = None
    state: str = "starting"
    restarts: int = 0
    last_exit: str | None = None
    started_at: float = 0.0


class Supervisor:
    """N worker processes on one client port, and the admin port that answers for them."""

    def __init__(self, settings: Settings, make_source: SourceFactory, count: int, *,
                 log_level: str = "INFO") -> None:
        if count < 1:
            raise ValueError("a supervisor needs at least one worker")
        self.settings = settings
        self.count = count
        self.slots = [Slot(i) for i in range(count)]
        self.resyncs = 0
        self.stopping = False
        self.source_description = make_source().description
        self.port = 0
        self.admin_port = 0
        self._make_source = make_source
        self._log_level = log_level
        self._reserved: socket.socket | None = None
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def admin_url(self) -> str:
        host = self.settings.admin_host or self.settings.host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.admin_port}"

    def _worker_settings(self) -> Settings:
        return replace(self.settings, port=self.port, reuse_port=True, admin_host="127.0.0.1",
                       admin_port=0, workers="1")

    async def start(self) -> None:
        """Start every worker (raise WorkerStartError naming the first that failed), then
        open the admin port."""
        self._reserved = reserve_port(self.settings.host, self.settings.port)
        self.port = int(self._reserved.getsockname()[1])
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ADMIN_TIMEOUT))
        started = await asyncio.gather(*(self._spawn(slot) for slot in self.slots),
                                       return_exceptions=True)
        failed = [(slot, e) for slot, e in zip(self.slots, started, strict=True)
                  if isinstance(e, BaseException)]
        if failed:
            await self.stop()
            slot, error = failed[0]
            raise WorkerStartError(f"worker {slot.index}: {error}")
        app = web.Application()
        app[SUPERVISOR] = self
        worker_admin.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.admin_host or self.settings.host,
                           self.settings.admin_port)
        await site.start()
        self.admin_port = int(self._runner.addresses[0][1])
        self._tasks = [asyncio.create_task(self._supervise(slot)) for slot in self.slots]
        self._tasks.append(asyncio.create_task(self._converge()))

    async def _spawn(self, slot: Slot) -> None:
        receive, send = SPAWN.Pipe(duplex=False)
        process = SPAWN.Process(
            target=worker_main, name=f"vpipe-worker-{slot.index}", daemon=True,
            args=(slot.index, self._worker_settings(), self._make_source, send, self._log_level))
        process.start()
        send.close()
        slot.process, slot.admin_port, slot.state = process, None, "starting"
        slot.started_at = time.monotonic()
        try:
            kind, value = await asyncio.wait_for(self._handshake(receive, process), START_LIMIT)
        except TimeoutError:
            process.kill()
            raise WorkerStartError(f"not ready after {START_LIMIT:.0f} s; killed") from None
        finally:
            receive.close()
        if kind != "started":
            process.join(5)
            raise WorkerStartError(str(value))
        slot.admin_port, slot.state = int(value), "running"
        log.info("worker %d (pid %s) serving", slot.index, process.pid)

    @staticmethod
    async def _handshake(receive: Connection, process: BaseProcess) -> tuple[str, Any]:
        await _readable(receive.fileno())
        try:
            message: tuple[str, Any] = receive.recv()
        except EOFError:  # it exited without a word: a crash before or during start
            await asyncio.to_thread(process.join, 5)
            return "failed", f"{describe_exit(process.exitcode)} before it was ready (see its log)"
        return message

    async def _supervise(self, slot: Slot) -> None:
        failures = 0
        try:
            while True:
                process = slot.process
                assert process is not None
                await _readable(process.sentinel)
                process.join()
                if self.stopping:
                    slot.state = "stopped"
                    return
                lived = time.monotonic() - slot.started_at
                failures = failures + 1 if lived < STABLE_AFTER else 1
                pause = 0.0 if failures == 1 else min(0.25 * 2 ** (failures - 2), 10.0)
                slot.restarts += 1
                slot.last_exit = (f"pid {process.pid} {describe_exit(process.exitcode)} after "
                                  f"{lived:.1f} s, at {time.strftime('%H:%M:%S')}")
                slot.state, slot.admin_port = "restarting", None
                log.error("worker %d: %s; starting a new one%s (restart %d)", slot.index,
                          slot.last_exit, f" in {pause:.2f} s" if pause else "", slot.restarts)
                await asyncio.sleep(pause)
                if self.stopping:
                    slot.state = "stopped"
                    return
                try:
                    await self._spawn(slot)
                except WorkerStartError as e:
                    slot.last_exit = f"restart failed: {e}"
                    log.error("worker %d: restart failed: %s", slot.index, e)
        except Exception:
            slot.state = "unsupervised"  # /readyz turns 503: nothing restarts it any more
            log.exception("supervising worker %d failed", slot.index)

    async def _converge(self) -> None:
        interval = max(self.settings.poll_interval, 0.1)
        diverged = 0
        while True:
            await asyncio.sleep(interval)
            try:
                views = await self.views()
            except Exception:
                log.exception("asking the workers for their revisions failed")
                continue
            if worker_admin.converged(views):
                diverged = 0
                continue
            diverged += 1
            if diverged < RESYNC_AFTER:
                continue
            diverged = 0
            self.resyncs += 1
            log.warning("workers serve different revisions (%s); telling each to re-read %s",
                        ", ".join(f"{v.worker}: {v.revision}" for v in views),
                        self.source_description)
            for slot in self.slots:
                if slot.state == "running" and slot.process and slot.process.pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(slot.process.pid, signal.SIGHUP)

    async def _get(self, slot: Slot, path: str) -> tuple[int, bytes, str]:
        assert self._session is not None
        async with self._session.get(f"http://127.0.0.1:{slot.admin_port}{path}") as response:
            return response.status, await response.read(), response.content_type

    async def _view(self, slot: Slot) -> WorkerView:
        pid = slot.process.pid if slot.process else None
        body: dict[str, Any] | None = None
        problem = None
        if slot.state == "running":
            try:
                _, raw, _ = await self._get(slot, "/readyz")
                body = orjson.loads(raw)
                if not body.get("ready"):
                    problem = "no config loaded yet"
            except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as e:
                problem = f"its admin app did not answer: {type(e).__name__} {e}".strip()
        else:
            problem = slot.last_exit or slot.state
        return WorkerView(slot.index, pid, slot.state, slot.restarts, slot.last_exit, body,
                          problem)

    async def views(self) -> list[WorkerView]:
        return list(await asyncio.gather(*(self._view(slot) for slot in self.slots)))

    async def metrics_texts(self) -> dict[int, str]:
        async def one(slot: Slot) -> tuple[int, str | None]:
            if slot.state != "running":
                return slot.index, None
            try:
                _, raw, _ = await self._get(slot, "/metrics")
            except (aiohttp.ClientError, TimeoutError) as e:
                log.warning("worker %d: /metrics did not answer: %s", slot.index, e)
                return slot.index, None
            return slot.index, raw.decode()

        texts = await asyncio.gather(*(one(slot) for slot in self.slots))
        return {index: text for index, text in texts if text is not None}

    async def forward(self, worker: int, path_qs: str) -> tuple[int, bytes, str]:
        slot = self.slots[worker]
        if slot.state != "running":
            return 503, orjson.dumps({"error": f"worker {worker} is {slot.state}"}), \
                "application/json"
        try:
            return await self._get(slot, path_qs)
        except (aiohttp.ClientError, TimeoutError) as e:
            return 502, orjson.dumps({"error": f"worker {worker} did not answer: {e}"}), \
                "application/json"

    async def stop(self) -> None:
        """Tell every worker to drain, wait for them (killing stragglers), close the ports."""
        self.stopping = True
        supervising, others = self._tasks[:self.count], self._tasks[self.count:]
        for task in others:
            task.cancel()
        running = [s.process for s in self.slots if s.process and s.process.is_alive()]
        for process in running:
            process.terminate()
        limit = self.settings.shutdown_timeout + KILL_MARGIN
        if supervising:  # each returns once its worker has exited
            await asyncio.wait(supervising, timeout=limit)
        else:  # start() failed before supervision began
            await asyncio.gather(*(asyncio.to_thread(p.join, limit) for p in running))
        for process in running:
            if process.is_alive():
                log.error("worker pid %s still running %.0f s after SIGTERM; killing it",
                          process.pid, limit)
                process.kill()
            await asyncio.to_thread(process.join, 5)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for slot in self.slots:
            slot.state = "stopped"
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        if self._reserved is not None:
            self._reserved.close()


async def serve_workers(settings: Settings, make_source: SourceFactory, count: int,
                        log_level: str = "INFO") -> None:
    """`vpipe serve --workers N`: run until SIGINT/SIGTERM, then drain every worker."""
    supervisor = Supervisor(settings, make_source, count, log_level=log_level)
    await supervisor.start()
    views = await supervisor.views()
    revisions = sorted({v.revision or "none yet" for v in views})
    print(f"vpipe proxy: {count} workers serving revision {', '.join(revisions)} from "
          f"{supervisor.source_description}\n  client API: {supervisor.url}/v1   admin: "
          f"{supervisor.admin_url} (/readyz /metrics /debug/config?worker=N)\nPress Ctrl+C to stop.",
          flush=True)
    try:
        await until_signalled()
    finally:
        log.info("shutting down: every worker finishes its in-flight requests")
        await supervisor.stop()
