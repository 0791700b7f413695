"""A real proxy (and fake upstream) on their own event loop in a thread, for synchronous tests.

Hypothesis drives plain functions; this lets it feed hundreds of generated configs to one
running proxy and look at it over HTTP like an operator would (admin /readyz, client API).
"""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import orjson

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy import running_upstream
from vpipe_proxy.server import ProxyServer
from vpipe_proxy.settings import Settings
from vpipe_proxy.sources import ConfigSource


class ThreadedProxy:
    """Handles to what runs in the thread; call `http` from the test's thread."""

    def __init__(self, server: ProxyServer, fake: FakeUpstream, upstream_url: str) -> None:
        self.server = server
        self.fake = fake
        self.upstream_url = upstream_url

    def http(self, method: str, url: str, body: Mapping[str, Any] | None = None,
             headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        data = orjson.dumps(body) if body is not None else None
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"content-type": "application/json",
                                                  **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, orjson.loads(e.read())

    def readyz(self) -> dict[str, Any]:
        _, body = self.http("GET", self.server.admin_url + "/readyz")
        return dict(body)


@contextmanager
def threaded_proxy(source: ConfigSource, environ: Mapping[str, str] | None = None,
                   **settings: Any) -> Iterator[ThreadedProxy]:
    """Start the fake upstream and a proxy reading `source` in a thread; stop both after."""
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()
    stop = asyncio.Event()  # only touched on the loop

    async def main() -> None:
        async with AsyncExitStack() as stack:
            fake = FakeUpstream()
            url = await stack.enter_async_context(running_upstream(fake))
            values: dict[str, Any] = {"port": 0, "admin_port": 0, "poll_interval": 0.02,
                                      "wait_for_config": True, "warm_connections": 0}
            values.update(settings)
            server = ProxyServer(Settings(**values), source, environ=environ or {})
            await server.start()
            stack.push_async_callback(server.stop)
            ready["proxy"] = ThreadedProxy(server, fake, url)
            started.set()
            await stop.wait()

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as e:
            ready["error"] = e
            started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="threaded-proxy", daemon=True)
    thread.start()
    started.wait(30)
    if "error" in ready:
        raise ready["error"]
    try:
        yield ready["proxy"]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        assert not thread.is_alive(), "the proxy thread did not stop"
