"""One worker of `vpipe serve --workers N`: a whole proxy in a process the supervisor spawned.

It tells the supervisor its private admin port once its first config is loaded (or why it
could not start), re-reads the config source on SIGHUP (the supervisor's resync), drains on
SIGTERM/SIGINT like a single proxy, and drains too when its supervisor is gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection

from vpipe_api.errors import VpipeApiError
from vpipe_proxy.errors import VpipeProxyError
from vpipe_proxy.server import ProxyServer, run
from vpipe_proxy.settings import Settings
from vpipe_proxy.sources import ConfigSource

log = logging.getLogger(__name__)

SourceFactory = Callable[[], ConfigSource]
"""Makes a worker's config source; must pickle (functools.partial of a class or classmethod)."""

LOG_FORMAT = "%(asctime)s %(levelname)s {who} %(name)s: %(message)s"


def worker_main(index: int, settings: Settings, make_source: SourceFactory, conn: Connection,
                log_level: str) -> None:
    """Entry point of a worker process (runs in a fresh interpreter)."""
    logging.basicConfig(level=log_level, format=LOG_FORMAT.format(who=f"worker-{index}"))
    outcome: list[int] = []
    run(_worker(settings, make_source, conn, outcome))
    sys.exit(outcome[0] if outcome else 1)


async def _worker(settings: Settings, make_source: SourceFactory, conn: Connection,
                  outcome: list[int]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    try:
        proxy = ProxyServer(settings, make_source())
        await proxy.start()
    except (VpipeApiError, VpipeProxyError, OSError) as e:
        conn.send(("failed", str(e)))
        outcome.append(1)
        return
    resyncs: set[asyncio.Task[bool]] = set()

    def resync() -> None:
        task = asyncio.create_task(proxy.reloader.reload())
        resyncs.add(task)
        task.add_done_callback(_resync_done)
        task.add_done_callback(resyncs.discard)

    loop.add_signal_handler(signal.SIGHUP, resync)
    conn.send(("started", proxy.admin_port))
    conn.close()
    orphan = asyncio.create_task(_exit_with_parent(parent, stop))
    await stop.wait()
    orphan.cancel()
    log.info("shutting down: finishing in-flight requests")
    await proxy.stop()
    outcome.append(0)


def _resync_done(task: asyncio.Task[bool]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("re-reading the config source on the supervisor's request failed",
                  exc_info=task.exception())


async def _exit_with_parent(parent: int, stop: asyncio.Event) -> None:
    # Nothing signals a parent's death portably; a getppid() a second is free.
    while os.getppid() == parent:  # noqa: ASYNC110
        await asyncio.sleep(1.0)
    log.error("the supervisor (pid %d) is gone; draining and exiting", parent)
    stop.set()
