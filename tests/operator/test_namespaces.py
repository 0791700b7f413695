"""Namespaces are independent: one namespace's resources never affect another's config or status.

Also the namespace-list mode (VPIPE_OPERATOR_NAMESPACES): only the listed namespaces are served.
That test runs with VPIPE_OPERATOR_SCANNING=false because kmock 0.8 cannot serve
`/api/v1/namespaces` (its URL parser fails on the cluster-scoped namespaces list), which kopf's
namespace observer would read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from tests.operator.harness import FAST, Cluster, OperatorThread, eventually, pipeline, route


async def test_two_namespaces_isolated(cluster: Cluster, operator: OperatorThread) -> None:
    for ns in ("ns-one", "ns-two"):
        await cluster.create(pipeline("mock-v1", ns))
        await cluster.create(route("r", ns, "mock-v1", [f"{ns}-*"]))
    one = await eventually(lambda: cluster.doc("ns-one"), what="ns-one's ConfigMap")
    two = await eventually(lambda: cluster.doc("ns-two"), what="ns-two's ConfigMap")
    assert one.namespace == "ns-one" and two.namespace == "ns-two"
    assert one.routes[0].models == ["ns-one-*"] and two.routes[0].models == ["ns-two-*"]

    # A broken route in ns-one holds ns-one only; ns-two keeps converging.
    await cluster.create(route("broken", "ns-one", "missing", ["x"]))
    await cluster.create(route("more", "ns-two", "mock-v1", ["more-*"]))
    await eventually(lambda: len(cluster.doc("ns-two").routes) == 2, what="ns-two updated")
    await operator.settle(cluster)
    assert cluster.doc("ns-one").revision == one.revision
    assert cluster.condition("Route", "ns-two", "more", "Ready")["status"] == "True"
    assert cluster.events("ns-two") == []

    # Emptying ns-one removes only ns-one's ConfigMap.
    for kind, name in (("Route", "r"), ("Route", "broken"), ("Pipeline", "mock-v1")):
        await cluster.delete(kind, "ns-one", name)
    await eventually(lambda: cluster.configmap("ns-one") is None, what="ns-one's ConfigMap gone")
    assert cluster.document("ns-two") is not None


async def test_only_listed_namespaces(
    cluster: Cluster, operator_factory: Callable[..., OperatorThread]
) -> None:
    settings = dataclasses.replace(FAST, namespaces=("served",), scanning=False)
    running = operator_factory(settings).start()
    try:
        for ns in ("served", "ignored"):
            await cluster.create(pipeline("mock-v1", ns))
            await cluster.create(route("r", ns, "mock-v1", ["m"]))
        await eventually(lambda: cluster.doc("served"), what="the served namespace's config")
        await running.settle(cluster)
    finally:
        await running.stop()
    assert cluster.configmap("ignored") is None
    assert "status" not in (cluster.get("Route", "ignored", "r") or {})
    assert not any("/namespaces/ignored/" in r.url.path for r in cluster.operator_requests())
