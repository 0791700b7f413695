"""When namespaces are reconciled: debounced, one at a time per namespace, retried with backoff.

kopf handlers only `touch(namespace)`. A worker task per dirty namespace waits until the namespace
has been quiet for `debounce` seconds (at most `max_delay` after the first touch), reconciles it,
and goes again if it was touched meanwhile; so a burst of 1,000 events is one reconcile, and two
reconciles of one namespace never overlap. Namespaces are independent: a failing one retries on
its own schedule and never delays another.

Retries mirror kopf's error semantics without blocking kopf's per-object queues: a
`TemporaryApiError` (409/429/5xx/network) retries after its own delay or an exponential backoff;
a `PermanentApiError` (401/403/404, e.g. RBAC or missing CRDs) retries at `backoff_max`;
any other exception is logged with its traceback and retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from vpipe_operator import errors
from vpipe_operator.controller import Outcome

logger = logging.getLogger(__name__)
Reconcile = Callable[[str], Awaitable[Outcome]]


@dataclasses.dataclass
class Stats:
    """Counters for logs and tests."""

    reconciles: int = 0
    failures: int = 0
    writes: int = 0
    last_seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    slowest_seconds: dict[str, float] = dataclasses.field(default_factory=dict)


class NamespaceScheduler:
    def __init__(
        self, reconcile: Reconcile, *, debounce: float, max_delay: float, concurrency: int,
        backoff: float, backoff_max: float,
    ) -> None:
        self._reconcile = reconcile
        self._debounce = debounce
        self._max_delay = max(max_delay, debounce)
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._semaphore = asyncio.Semaphore(concurrency)
        self._dirty: dict[str, float] = {}  # namespace -> monotonic time of its first touch
        self._wakeups: dict[str, asyncio.Event] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._busy: set[str] = set()
        self._closed = False
        self.stats = Stats()

    @property
    def idle(self) -> bool:
        """Nothing dirty, nothing running, no retry or recheck pending."""
        return not self._workers

    @property
    def settled(self) -> bool:
        """Nothing dirty and nothing running (a retry or Secret recheck may be pending)."""
        return not self._dirty and not self._busy

    def touch(self, namespace: str) -> None:
        """Something in `namespace` changed: reconcile it soon."""
        if self._closed:
            return
        self._dirty.setdefault(namespace, time.monotonic())
        wakeup = self._wakeups.get(namespace)
        if wakeup is not None:
            wakeup.set()
        if namespace not in self._workers:
            self._wakeups[namespace] = asyncio.Event()
            self._workers[namespace] = asyncio.create_task(
                self._work(namespace), name=f"vpipe-reconcile:{namespace}")

    async def close(self, grace: float) -> None:
        """Stop: idle workers now; in-flight reconciles get `grace` seconds to finish."""
        self._closed = True
        for namespace, task in list(self._workers.items()):
            if namespace not in self._busy:
                task.cancel()
        tasks = list(self._workers.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            logger.warning("Reconcile of namespace %s did not finish in %.1fs; cancelled",
                           task.get_name().partition(":")[2], grace)
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()  # a task cancelled before it ever ran never reached its `finally`
        self._wakeups.clear()
        self._dirty.clear()

    async def _work(self, namespace: str) -> None:
        wakeup = self._wakeups[namespace]
        failures = 0
        try:
            while True:
                await self._quiet(namespace, wakeup)
                self._dirty.pop(namespace, None)
                delay, failed = await self._run(namespace, failures)
                failures = failures + 1 if failed else 0
                if self._closed:
                    return
                if delay is None:
                    if namespace not in self._dirty:
                        return  # `finally` unregisters before any other task runs
                    continue
                if failed:
                    await asyncio.sleep(delay)  # a touch does not cut an API backoff short
                else:
                    wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wakeup.wait(), delay)
                self._dirty.setdefault(namespace, time.monotonic())
        finally:
            self._workers.pop(namespace, None)
            self._wakeups.pop(namespace, None)

    async def _quiet(self, namespace: str, wakeup: asyncio.Event) -> None:
        """Wait until `namespace` had no touch for `debounce` s, or `max_delay` s passed."""
        first = self._dirty.get(namespace, time.monotonic())
        while True:
            wakeup.clear()
            remaining = min(self._debounce, first + self._max_delay - time.monotonic())
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(wakeup.wait(), remaining)
            except TimeoutError:
                return

    async def _run(self, namespace: str, failures: int) -> tuple[float | None, bool]:
        """Reconcile once; return (seconds until the next run or None, whether it failed)."""
        async with self._semaphore:
            self._busy.add(namespace)
            try:
                outcome = await self._reconcile(namespace)
            except errors.TemporaryApiError as e:
                delay = e.delay if e.delay is not None else self._backoff_for(failures)
                logger.warning("Namespace %s: reconcile failed, retrying in %.1fs: %s",
                               namespace, delay, e)
                self.stats.failures += 1
                return delay, True
            except errors.PermanentApiError as e:
                logger.error("Namespace %s: reconcile failed, retrying in %.1fs: %s",
                             namespace, self._backoff_max, e)
                self.stats.failures += 1
                return self._backoff_max, True
            except Exception:
                delay = self._backoff_for(failures)
                logger.exception("Namespace %s: reconcile crashed, retrying in %.1fs",
                                 namespace, delay)
                self.stats.failures += 1
                return delay, True
            finally:
                self._busy.discard(namespace)
        self.stats.reconciles += 1
        self.stats.writes += outcome.writes
        self.stats.last_seconds[namespace] = outcome.seconds
        slowest = self.stats.slowest_seconds.get(namespace, 0.0)
        self.stats.slowest_seconds[namespace] = max(slowest, outcome.seconds)
        return outcome.recheck_after, False

    def _backoff_for(self, failures: int) -> float:
        return float(min(self._backoff * 2 ** failures, self._backoff_max))
