"""Atomic reload: load -> validate -> build and warm -> swap one reference -> drain the old.

A config that fails at any step is rejected and the last good runtime keeps serving; the
rejection is logged, counted and shown on /readyz. Any exception while loading counts as a
rejection, not only the project's own: an unexpected one is logged with its traceback, and the
watcher carries on. Requests in flight finish on the runtime they started on; its instances
that the new config no longer uses close after it drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from vpipe_api.errors import VpipeApiError
from vpipe_proxy.errors import VpipeProxyError
from vpipe_proxy.metrics import Metrics
from vpipe_proxy.pool import InstancePool
from vpipe_proxy.runtime import Runtime
from vpipe_proxy.sources import ConfigSource, Fingerprint
from vpipe_proxy.supervise import Supervisor

log = logging.getLogger(__name__)


def settle_heap() -> None:
    """Collect once, then freeze what lives: the config and its instances stay for the process's
    life, and without this every full collection walks them again (16-25 ms pauses under load,
    measured in bench/). Unfreezing first lets a replaced config's cycles be collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN})


def caused_by_exhaustion(error: BaseException) -> bool:
    """Whether `error`, or an exception it was raised from, is the process running out of file
    descriptors or memory: worth another try once they are back, unlike a bad config."""
    seen: BaseException | None = error
    for _ in range(10):  # cause chains are short; a cycle must not loop forever
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno in _EXHAUSTED:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass
class ReloadStatus:
    """What /readyz reports about the last attempt."""

    ok: bool = False
    revision: str | None = None
    error: str | None = None
    at: float = 0.0
    duration_ms: float = 0.0
    attempts: int = 0
    failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "revision": self.revision, "error": self.error, "at": self.at,
                "durationMs": round(self.duration_ms, 3), "attempts": self.attempts,
                "failures": self.failures}


@dataclass
class Reloader:
    """Keeps `current` pointing at the newest good runtime of a config source."""

    source: ConfigSource
    pool: InstancePool
    metrics: Metrics
    supervisor: Supervisor
    drain_timeout: float = 600.0
    current: Runtime | None = None
    status: ReloadStatus = field(default_factory=ReloadStatus)
    _fingerprint: Fingerprint | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def reload(self) -> bool:
        """Load the source now; True when a new runtime was swapped in."""
        async with self._lock:
            return await self._reload()

    async def _reload(self) -> bool:
        started = time.perf_counter()
        self.status.attempts += 1
        try:
            self._fingerprint = self.source.fingerprint()
            # Parsing and rendering 1,000 Routes takes ~100 ms of CPU: in a thread, the event
            # loop keeps getting the GIL every few ms and requests in flight keep moving.
            document = await asyncio.to_thread(self.source.load)
            if self.current is not None and document.revision == self.current.revision:
                self._record(True, document.revision, None, started)
                return False
            runtime = await self.pool.build(document)
        except (VpipeApiError, VpipeProxyError) as e:
            self._reject(e, str(e), started)
            return False
        except Exception as e:  # whatever a config makes raise, it is a rejection
            # A bug or a resource limit rather than a bad config: the traceback is logged for
            # whoever fixes it, the message names the exception.
            log.error("loading config from %s raised unexpectedly", self.source.description,
                      exc_info=e)
            self._reject(e, f"unexpected {type(e).__name__} while loading: {e}", started)
            return False
        old, self.current = self.current, runtime
        self.metrics.config_loaded(runtime.revision, len(self.pool.live))
        self._record(True, runtime.revision, None, started)
        log.info("loaded config revision %s from %s (%d routes, %d instances) in %.1f ms",
                 runtime.revision, self.source.description, len(runtime.router.routes),
                 len(runtime.instance_keys), self.status.duration_ms)
        if old is None:
            settle_heap()
        else:
            self.supervisor.run_once("retire-config", self._retire(old))
        return True

    def _reject(self, cause: Exception, error: str, started: float) -> None:
        self._record(False, None, error, started)
        log.error("config from %s rejected, keeping revision %s: %s", self.source.description,
                  self.current.revision if self.current else "none", error)
        if caused_by_exhaustion(cause):
            # Out of file descriptors: the source may never change again, so forget its
            # fingerprint and try again at the next poll.
            self._fingerprint = None

    def _record(self, ok: bool, revision: str | None, error: str | None, started: float) -> None:
        self.status.ok = ok
        self.status.error = error
        if revision is not None:
            self.status.revision = revision
        self.status.at = time.time()
        self.status.duration_ms = (time.perf_counter() - started) * 1000
        if not ok:
            self.status.failures += 1
        self.metrics.reload_result(ok)

    async def _retire(self, old: Runtime) -> None:
        try:
            await asyncio.wait_for(old.drained(), self.drain_timeout)
        except TimeoutError:
            log.warning("revision %s still had %d requests after %.0f s; closing its instances",
                        old.revision, old.in_flight, self.drain_timeout)
        await self.pool.retire(old)
        del old
        settle_heap()
        self.metrics.config_loaded(self.current.revision if self.current else "", len(self.pool.live))

    async def watch(self, interval: float) -> None:
        """Poll the source's fingerprint and reload when it moves; runs until cancelled."""
        while True:
            told = self.source.changed
            if told is None:
                await asyncio.sleep(interval)
            else:  # told of changes: react at once, and still re-check every interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(told.wait(), interval)
                told.clear()
            try:
                changed = self.source.fingerprint() != self._fingerprint
            except OSError as e:  # e.g. EMFILE: say so, and look again next interval
                log.warning("cannot check %s: %s", self.source.description, e)
                continue
            if changed:
                await self.reload()

    async def close(self) -> None:
        """Close the source and every instance (the supervisor has stopped the tasks)."""
        await self.source.close()
        await self.pool.close()
