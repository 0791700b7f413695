"""1,000 Routes in one namespace: one debounced reconcile, and how long it takes.

The objects are loaded into kmock directly (1,000 HTTP creates through kmock would measure kmock),
then the operator starts: kopf lists them and fires 1,000 events within milliseconds, the
scheduler turns them into one reconcile that writes the ConfigMap and 1,001 statuses, and the
follow-up reconcile (triggered by those status changes) writes nothing. Durations are printed
(run with -s), not asserted: wall-clock limits make flaky tests; the test timeout bounds them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.operator.harness import Cluster, OperatorThread, eventually, pipeline, route
from vpipe_operator import reconcile

NS = "scale"
COUNT = 1000


def _objects() -> list[dict[str, Any]]:
    return [pipeline("mock-v1", NS)] + [
        route(f"r-{i:04d}", NS, "mock-v1", [f"model-{i}", f"family-{i}-*"]) for i in range(COUNT)
    ]


def test_pure_reconcile_of_1000_routes() -> None:
    objs = _objects()
    started = time.perf_counter()
    snapshot = reconcile.Snapshot(
        NS, tuple(reconcile.Observed.from_api(o["kind"], o) for o in objs),
        None)
    analysis = reconcile.analyze(snapshot)
    plan = reconcile.decide(analysis, {}, now="2026-01-01T00:00:00Z")
    elapsed = time.perf_counter() - started
    print(f"\npure analyze+decide of {COUNT} Routes: {elapsed * 1000:.0f} ms")
    assert analysis.document is not None and len(analysis.document.routes) == COUNT
    assert isinstance(plan.configmap, reconcile.Create) and len(plan.statuses) == COUNT + 1


async def test_1000_routes_one_reconcile(
    cluster: Cluster, operator_factory: Callable[..., OperatorThread]
) -> None:
    for obj in _objects():
        meta = obj["metadata"]
        plural = "pipelines" if obj["kind"] == "Pipeline" else "routes"
        cluster.k.objects[f"vpipe.io/v1alpha1/{plural}", NS, meta["name"]] = obj

    started = time.monotonic()
    running = operator_factory().start()
    try:
        doc = await eventually(lambda: cluster.doc(NS), what="the ConfigMap", timeout=30)
        await running.settle(cluster, timeout=30)
        total = time.monotonic() - started
        assert running.runtime.scheduler is not None
        stats = running.runtime.scheduler.stats
    finally:
        await running.stop()
    assert len(doc.routes) == COUNT
    assert stats.writes == COUNT + 2 and stats.failures == 0  # ConfigMap + 1,001 statuses
    assert cluster.condition("Route", NS, f"r-{COUNT - 1:04d}", "Ready")["status"] == "True"
    writes = cluster.operator_writes()
    assert len(writes) == COUNT + 2
    print(f"\n{COUNT} Routes: {stats.reconciles} reconciles; slowest (1,002 writes) "
          f"{stats.slowest_seconds[NS]:.2f}s, last (no writes) {stats.last_seconds[NS]:.2f}s; "
          f"operator start to settled {total:.2f}s")
