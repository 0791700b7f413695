"""Idempotence: a reconcile of an unchanged namespace writes nothing, even across a restart.

The second operator (a restart, or a newly active replica) lists everything again and reconciles
every namespace, but the revision annotation, the ConfigMap data and every status (with its
lastTransitionTime) already say what it would write, so it makes no write request at all.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.operator.harness import Cluster, OperatorThread, eventually, pipeline, route


async def test_restart_writes_nothing(
    cluster: Cluster, operator_factory: Callable[..., OperatorThread]
) -> None:
    for ns in ("team-d", "team-e"):
        await cluster.create(pipeline("mock-v1", ns))
        await cluster.create(route("ok", ns, "mock-v1", ["ok-*"]))
        await cluster.create(route("broken", ns, "missing", ["broken-*"]))  # held, with an Event
    await cluster.create(pipeline("solo", "team-f"))

    first = operator_factory().start()
    try:
        await eventually(lambda: cluster.doc("team-f"), what="a ConfigMap")
        await first.settle(cluster)
    finally:
        await first.stop()
    writes = cluster.operator_writes()
    assert any("/events" in w for w in writes)  # the broken routes were reported once

    second = operator_factory().start()
    try:
        await eventually(lambda: second.reconciles >= 3, what="every namespace reconciled")
        await second.settle(cluster)
    finally:
        await second.stop()
    assert cluster.operator_writes() == writes
