"""Process assembly: config source -> reloader -> client app + admin app on their own ports.

`ProxyServer` is what the CLI runs and what tests start in-process on port 0. Start-up loads
and warms the first config before the ports open for traffic; shutdown stops accepting, lets
in-flight requests finish (bounded by `shutdown_timeout`) and closes every instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Mapping
from typing import Any

from aiohttp import web

from vpipe_proxy import admin, frontend
from vpipe_proxy.errors import ConfigLoadError
from vpipe_proxy.metrics import Metrics
from vpipe_proxy.pool import InstancePool
from vpipe_proxy.registry import BuildContext, Registry
from vpipe_proxy.reload import Reloader
from vpipe_proxy.settings import Settings
from vpipe_proxy.shadow import ShadowRunner
from vpipe_proxy.sources import ConfigSource
from vpipe_proxy.state import STATE, ProxyState
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
        context = BuildContext(secrets_dir=settings.secrets_dir,
                               environ=os.environ if environ is None else environ,
                               warm_connections=settings.warm_connections)
        pool = InstancePool(registry or Registry(), context)
        self.reloader = Reloader(source, pool, self.metrics, drain_timeout=settings.drain_timeout)
        self.shadow = ShadowRunner(self.metrics, settings.shadow_concurrency,
                                   settings.shadow_log_sample, settings.shadow_log_contents)
        self.threads = ThreadPins(settings.thread_pins)
        self.metrics.watch_threads(self.threads)
        self.state = ProxyState(settings, self.reloader, self.metrics, self.shadow, self.threads)
        self._runners: list[web.AppRunner] = []
        self._watch: asyncio.Task[None] | None = None
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
        await self.reloader.source.start()
        if not await self.reloader.reload() and self.reloader.current is None:
            if not self.settings.wait_for_config:
                await self.reloader.source.close()
                raise ConfigLoadError(self.reloader.status.error or "config could not be loaded")
            log.warning("no valid config yet (%s); serving 503 until one arrives",
                        self.reloader.status.error)
        client, admin_app = self._apps()
        admin_host = self.settings.admin_host or self.settings.host
        for app, host, port in ((client, self.settings.host, self.settings.port),
                                (admin_app, admin_host, self.settings.admin_port)):
            # handler_cancellation: a client that disconnects cancels its upstream request.
            runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                                   shutdown_timeout=self.settings.shutdown_timeout)
            await runner.setup()
            site = web.TCPSite(runner, host, port, backlog=1024,
                               reuse_port=self.settings.reuse_port and app is client)
            await site.start()
            self._runners.append(runner)
        self.port = _site_port(self._runners[0])
        self.admin_port = _site_port(self._runners[1])
        self._watch = asyncio.create_task(self.reloader.watch(self.settings.poll_interval))

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, close every instance."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        await self.shadow.close()
        await self.reloader.close()


async def run_until_signalled(server: ProxyServer, announce: bool = True) -> None:
    """Run `server` until SIGINT/SIGTERM, then shut it down gracefully."""
    await server.start()
    if announce:
        _announce(server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down: finishing in-flight requests")
        await server.stop()


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
