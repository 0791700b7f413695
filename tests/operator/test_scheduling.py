"""The namespace scheduler (`scheduling`): debounce, serial per namespace, retries, shutdown.

A burst of touches is one reconcile; touches during a reconcile cause exactly one more; two
namespaces run independently; temporary API errors retry after their own delay, permanent ones
at the maximum backoff, crashes with backoff; a Secret recheck reconciles again without a touch;
`close` lets an in-flight reconcile finish.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.operator.harness import eventually
from vpipe_operator import errors
from vpipe_operator.controller import Outcome
from vpipe_operator.scheduling import NamespaceScheduler


class FakeReconcile:
    def __init__(self, *, delay: float = 0.0) -> None:
        self.calls: Counter[str] = Counter()
        self.delay = delay
        self.failures: list[BaseException] = []
        self.recheck: float | None = None
        self.running = 0
        self.max_running = 0

    async def __call__(self, namespace: str) -> Outcome:
        self.calls[namespace] += 1
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(self.delay)
            if self.failures:
                raise self.failures.pop(0)
            return Outcome(writes=1, seconds=self.delay, recheck_after=self.recheck)
        finally:
            self.running -= 1


def scheduler(fake: FakeReconcile, *, debounce: float = 0.05) -> NamespaceScheduler:
    return NamespaceScheduler(fake, debounce=debounce, max_delay=1.0, concurrency=4,
                              backoff=0.01, backoff_max=0.1)


async def test_a_burst_is_one_reconcile() -> None:
    fake = FakeReconcile()
    s = scheduler(fake)
    for _ in range(1000):
        s.touch("ns")
    await eventually(lambda: s.idle and fake.calls["ns"], what="the reconcile")
    assert fake.calls == Counter({"ns": 1}) and s.stats.reconciles == 1


async def test_touches_during_a_reconcile_run_it_once_more_never_concurrently() -> None:
    fake = FakeReconcile(delay=0.1)
    s = scheduler(fake, debounce=0.01)
    s.touch("ns")
    await eventually(lambda: fake.running, what="the first reconcile running")
    for _ in range(10):
        s.touch("ns")
    await eventually(lambda: s.idle and fake.calls["ns"] == 2, what="exactly one more")
    assert fake.max_running == 1


async def test_namespaces_are_independent() -> None:
    fake = FakeReconcile(delay=0.05)
    s = scheduler(fake)
    s.touch("a")
    s.touch("b")
    await eventually(lambda: s.idle and sum(fake.calls.values()) == 2, what="both")
    assert fake.max_running == 2


async def test_api_errors_are_retried() -> None:
    fake = FakeReconcile()
    fake.failures = [
        errors.TooManyRequests("GET", "/x", 429, "TooManyRequests", "slow", delay=0.05),
        errors.Forbidden("GET", "/x", 403, "Forbidden", "no"),
        RuntimeError("bug"),
    ]
    s = scheduler(fake)
    s.touch("ns")
    await eventually(lambda: s.idle and s.stats.reconciles == 1, what="success after retries")
    assert fake.calls["ns"] == 4 and s.stats.failures == 3


async def test_recheck_reconciles_again_without_a_touch() -> None:
    fake = FakeReconcile()
    fake.recheck = 0.05
    s = scheduler(fake)
    s.touch("ns")
    await eventually(lambda: fake.calls["ns"] >= 3, what="rechecks")
    fake.recheck = None
    await eventually(lambda: s.idle, what="the rechecks to stop")


async def test_close_lets_the_in_flight_reconcile_finish() -> None:
    fake = FakeReconcile(delay=0.2)
    s = scheduler(fake, debounce=0.01)
    s.touch("busy")
    await eventually(lambda: fake.running, what="a reconcile in flight")
    s.touch("waiting")  # still debouncing: cancelled at once
    await s.close(grace=5)
    assert s.stats.reconciles == 1 and fake.calls == Counter({"busy": 1}) and s.idle
    s.touch("after")  # ignored once closed
    assert s.idle
