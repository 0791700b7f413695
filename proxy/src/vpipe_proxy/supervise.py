"""Supervision of the proxy's background tasks: none may die without a trace.

Every long-lived task (config watcher, API watch) runs under `Supervisor.keep_running`: any
exception it raises, not only the project's own, is logged with its traceback, counted in
`vpipe_background_task_failures_total{task}`, shown on /readyz and /debug/config, and the task
is started again after a backoff that doubles up to a cap. One-shot tasks (draining a replaced
config) run under `Supervisor.run_once`: same logging and counting, no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger(__name__)

FIRST_BACKOFF: Final = 0.1  # seconds before the first restart
MAX_BACKOFF: Final = 30.0  # the backoff doubles up to this
HEALTHY_AFTER: Final = 60.0  # a run this long resets the backoff


@dataclass
class TaskFailures:
    """What /readyz shows about one supervised task."""

    count: int = 0
    last_error: str | None = None
    at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"failures": self.count, "lastError": self.last_error, "at": self.at}


class Supervisor:
    """Starts, restarts, counts and finally cancels the process's background tasks."""

    def __init__(self, registry: CollectorRegistry, *, first_backoff: float = FIRST_BACKOFF,
                 max_backoff: float = MAX_BACKOFF) -> None:
        self.failures_total = Counter(
            "vpipe_background_task_failures",
            "Exceptions raised by background tasks (config watcher, API watch, draining a "
            "replaced config), by task; long-lived tasks are restarted after each.",
            ["task"], registry=registry)
        self.tasks: dict[str, TaskFailures] = {}
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._running: set[asyncio.Task[None]] = set()

    def keep_running(self, name: str, run: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run `run()` until cancelled; restart it with backoff whenever it raises or returns."""
        self.tasks.setdefault(name, TaskFailures())
        return self._spawn(name, self._restarting(name, run))

    def run_once(self, name: str, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coroutine` to its end; a failure is logged and counted, not restarted."""
        self.tasks.setdefault(name, TaskFailures())
        return self._spawn(name, self._once(name, coroutine))

    def snapshot(self) -> dict[str, Any]:
        """Per task: failures so far, the last error, when."""
        return {name: failures.as_dict() for name, failures in sorted(self.tasks.items())}

    @property
    def running(self) -> int:
        return len(self._running)

    async def close(self) -> None:
        """Cancel every task and wait for each to end."""
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _spawn(self, name: str, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine, name=f"vpipe:{name}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    def _record(self, name: str, error: BaseException) -> None:
        failures = self.tasks[name]
        failures.count += 1
        failures.last_error = f"{type(error).__name__}: {error}"
        failures.at = time.time()
        self.failures_total.labels(name).inc()

    async def _once(self, name: str, coroutine: Coroutine[Any, Any, None]) -> None:
        try:
            await coroutine
        except Exception as e:
            self._record(name, e)
            log.error("background task %s failed", name, exc_info=e)

    async def _restarting(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        backoff = self._first_backoff
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await run()
                error: Exception = RuntimeError("returned, but it must run until cancelled")
            except Exception as e:
                error = e
            self._record(name, error)
            if loop.time() - started >= HEALTHY_AFTER:
                backoff = self._first_backoff
            log.error("background task %s failed; restarting it in %.1f s", name, backoff,
                      exc_info=error)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)
