"""Process assembly: config source -> reloader -> client app + admin app on their own ports.

`ProxyServer` is what the CLI runs and what tests start in-process on port 0. Start-up loads
and warms the first config before the ports open for traffic; shutdown stops accepting, lets
in-flight requests finish and closes every instance, all within `shutdown_timeout` (one deadline
for the whole drain, so the pod's terminationGracePeriodSeconds can be set above it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Mapping
from typing import Any

from aiohttp import web

from vpipe_proxy import admin, frontend
from vpipe_proxy.client_limits import LimitedTCPSite
from vpipe_proxy.errors import ConfigLoadError
from vpipe_proxy.metrics import Metrics
from vpipe_proxy.pool import InstancePool
from vpipe_proxy.registry import BuildContext, Registry
from vpipe_proxy.reload import Reloader
from vpipe_proxy.settings import Settings
from vpipe_proxy.shadow import ShadowRunner
from vpipe_proxy.sources import ConfigSource
from vpipe_proxy.state import STATE, ProxyState
from vpipe_proxy.supervise import Supervisor
from vpipe_proxy.threads import ThreadPins

log = logging.getLogger(__name__)


def _site_port(runner: web.AppRunner) -> int:
    address = runner.addresses[0]
    return int(address[1])


class ProxyServer:
    """One proxy process's servers and background tasks."""

    def __init__(
        self,
        settings: Settings,
        source: ConfigSource,
        *,
        environ: Mapping[str, str] | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.supervisor = Supervisor(self.metrics.registry)
        context = BuildContext(secrets_dir=settings.secrets_dir,
                               environ=os.environ if environ is None else environ,
                               warm_connections=settings.warm_connections,
                               max_upstream_body_bytes=settings.max_upstream_body_bytes,
                               max_sse_event_bytes=settings.max_sse_event_bytes)
        pool = InstancePool(registry or Registry(), context)
        self.reloader = Reloader(source, pool, self.metrics, self.supervisor,
                                 drain_timeout=settings.drain_timeout)
        self.shadow = ShadowRunner(self.metrics, settings.shadow_concurrency,
                                   settings.shadow_log_sample, settings.shadow_log_contents)
        self.threads = ThreadPins(settings.thread_pins)
        self.metrics.watch_threads(self.threads)
        self.state = ProxyState(settings, self.reloader, self.metrics, self.shadow, self.threads,
                                self.supervisor)
        self._runners: list[web.AppRunner] = []
        self._watch: asyncio.Task[None] | None = None  # the config watcher, under the supervisor
        self.port = 0
        self.admin_port = 0

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def admin_url(self) -> str:
        host = self.settings.admin_host or self.settings.host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.admin_port}"

    def _apps(self) -> tuple[web.Application, web.Application]:
        client = web.Application(client_max_size=self.settings.max_body_bytes)
        client[STATE] = self.state
        frontend.add_routes(client)
        admin_app = web.Application()
        admin_app[STATE] = self.state
        admin.add_routes(admin_app)
        return client, admin_app

    async def start(self) -> None:
        """Load the first config (raise ConfigLoadError if it is unusable), then listen."""
        await self.reloader.source.start(self.supervisor)
        if not await self.reloader.reload() and self.reloader.current is None:
            if not self.settings.wait_for_config:
                await self.supervisor.close()
                await self.reloader.source.close()
                raise ConfigLoadError(self.reloader.status.error or "config could not be loaded")
            log.warning("no valid config yet (%s); serving 503 until one arrives",
                        self.reloader.status.error)
        client, admin_app = self._apps()
        admin_host = self.settings.admin_host or self.settings.host
        limit = self.settings.max_client_connections
        for app, host, port, most in ((client, self.settings.host, self.settings.port, limit),
                                      (admin_app, admin_host, self.settings.admin_port, 64)):
            # handler_cancellation: a client that disconnects cancels its upstream request.
            # keepalive_timeout also bounds how long a new connection may take to send a head
            # (aiohttp arms it at connect), which is what stops a slowloris client.
            # auto_decompress off: the front end decodes bodies itself (content_encoding.py),
            # answering a bad one in the client's protocol instead of aiohttp's plain text.
            runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                                   shutdown_timeout=self.settings.shutdown_timeout,
                                   keepalive_timeout=self.settings.client_idle_timeout,
                                   auto_decompress=False)
            await runner.setup()
            site = LimitedTCPSite(runner, host, port, max_connections=most, backlog=1024,
                                  reuse_port=self.settings.reuse_port and app is client)
            await site.start()
            self._runners.append(runner)
        self.port = _site_port(self._runners[0])
        self.admin_port = _site_port(self._runners[1])
        poll = self.settings.poll_interval
        self._watch = self.supervisor.keep_running("config-watcher",
                                                   lambda: self.reloader.watch(poll))

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, close every instance: at most
        `shutdown_timeout` seconds in all; requests still running at the deadline are cut."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_timeout
        await self.supervisor.close()
        # aiohttp waits up to its shutdown_timeout for handlers, then again as long for the
        # cancelled ones, runner after runner; one shared deadline bounds all of it.
        for runner in self._runners:
            for site in list(runner.sites):
                await site.stop()
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.gather(*(runner.cleanup() for runner in self._runners))
        except TimeoutError:
            runtime = self.reloader.current
            log.warning("shutdown: requests still running after %.1f s (VPIPE_SHUTDOWN_TIMEOUT); "
                        "closing them (%d on the current config)", self.settings.shutdown_timeout,
                        runtime.in_flight if runtime else 0)
            for runner in self._runners:
                # Closing the socket cancels its handler (handler_cancellation).
                for connection in runner.server.connections if runner.server else ():
                    connection.force_close()
            await asyncio.sleep(0)
        self._runners.clear()
        await self.shadow.close()
        await self.reloader.close()


async def run_until_signalled(server: ProxyServer, announce: bool = True) -> None:
    """Run `server` until SIGINT/SIGTERM, then shut it down gracefully."""
    await server.start()
    if announce:
        _announce(server)
    try:
        await until_signalled()
    finally:
        log.info("shutting down: finishing in-flight requests")
        await server.stop()


async def until_signalled() -> None:
    """Return once the process gets SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _announce(server: ProxyServer) -> None:
    runtime = server.reloader.current
    if runtime is None:
        print(f"vpipe proxy waiting for a config from {server.reloader.source.description}; "
              f"client API {server.url}/v1 answers 503 until then", flush=True)
        return
    example = next((p.source for r in runtime.router.routes for p in r.patterns
                    if p.kind == "exact"), "MODEL")
    print(
        f"vpipe proxy serving revision {runtime.revision} "
        f"({len(runtime.router.routes)} routes) from {server.reloader.source.description}\n"
        f"  client API: {server.url}/v1   admin: {server.admin_url} "
        "(/readyz /metrics /debug/config /debug/explain)\n\n"
        "Try it:\n"
        f"  curl -s {server.url}/v1/chat/completions -H 'Content-Type: application/json' \\\n"
        f"    -d '{{\"model\": \"{example}\", \"messages\": [{{\"role\": \"user\", "
        "\"content\": \"hello\"}]}'\n"
        f"  {sys.executable} -c \"from openai import OpenAI; c = OpenAI(base_url='{server.url}/v1', "
        f"api_key='unused'); print(c.chat.completions.create(model='{example}', "
        "messages=[{'role': 'user', 'content': 'hello'}]).choices[0].message.content)\"\n"
        "Press Ctrl+C to stop.",
        flush=True,
    )


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop where available: it roughly halves the loop's share of a request."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        asyncio.run(main)
        return
    uvloop.run(main)
