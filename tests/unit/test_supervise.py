"""The supervisor: a background task that raises anything is logged, counted and restarted.

Aspects: any exception class (not only the project's own) is counted per task, shown in the
snapshot and logged with its traceback; the task is restarted with a backoff that grows up to
the cap; a task that returns is a failure too (long-lived tasks must run until cancelled);
one-shot tasks are counted but not restarted; close() cancels everything.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from vpipe_proxy.supervise import Supervisor


async def until(condition: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("error", [ValueError("bad URL"), OSError(24, "Too many open files"),
                                   KeyError("metadata"), RuntimeError("boom")])
async def test_any_exception_is_counted_logged_and_the_task_restarted(
        error: Exception, caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    supervisor = Supervisor(registry, first_backoff=0.001, max_backoff=0.01)
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 3:
            raise error
        await asyncio.Event().wait()  # then healthy, until cancelled

    with caplog.at_level(logging.ERROR, "vpipe_proxy.supervise"):
        supervisor.keep_running("watcher", flaky)
        await until(lambda: runs == 4)
    assert registry.get_sample_value("vpipe_background_task_failures_total",
                                     {"task": "watcher"}) == 3
    shown = supervisor.snapshot()["watcher"]
    assert shown["failures"] == 3 and type(error).__name__ in shown["lastError"]
    assert sum(1 for r in caplog.records if r.exc_info and r.exc_info[1] is error) == 3
    assert supervisor.running == 1
    await supervisor.close()
    assert supervisor.running == 0


async def test_a_long_lived_task_that_returns_is_restarted() -> None:
    supervisor = Supervisor(CollectorRegistry(), first_backoff=0.001)
    runs = 0

    async def quits() -> None:
        nonlocal runs
        runs += 1

    supervisor.keep_running("quitter", quits)
    await until(lambda: runs >= 2)
    assert "must run until cancelled" in supervisor.snapshot()["quitter"]["lastError"]
    await supervisor.close()


async def test_backoff_doubles_up_to_the_cap(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor(CollectorRegistry(), first_backoff=0.001, max_backoff=0.004)
    runs = 0

    async def failing() -> None:
        nonlocal runs
        runs += 1
        raise ValueError("always")

    with caplog.at_level(logging.ERROR, "vpipe_proxy.supervise"):
        supervisor.keep_running("failing", failing)
        await until(lambda: runs >= 6)
    await supervisor.close()
    waits = [r.args[1] for r in caplog.records if isinstance(r.args, tuple)][:5]
    assert waits == [0.001, 0.002, 0.004, 0.004, 0.004]


async def test_a_one_shot_task_is_counted_not_restarted() -> None:
    registry = CollectorRegistry()
    supervisor = Supervisor(registry)
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1
        raise ValueError("drain failed")

    await supervisor.run_once("retire-config", once())
    assert runs == 1
    assert registry.get_sample_value("vpipe_background_task_failures_total",
                                     {"task": "retire-config"}) == 1
    assert supervisor.running == 0
