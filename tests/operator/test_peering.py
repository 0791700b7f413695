"""HA peering (VPIPE_OPERATOR_PEERING): kopf keeps its keep-alive in the ClusterKopfPeering.

With a peering name the operator runs peered (mandatory): it needs kopf's peering CRD and the
named object, writes its keep-alive there, and still serves. The RBAC audit of `cluster` checks
that the ClusterRole grants what peering uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import kmock

from tests.operator.harness import FAST, Cluster, OperatorThread, eventually, pipeline


async def test_peered_operator_keeps_alive_and_serves(
    cluster: Cluster, operator_factory: Callable[..., OperatorThread]
) -> None:
    cluster.k.resources["kopf.dev/v1/clusterkopfpeerings"] = kmock.ResourceInfo(
        namespaced=False, kind="ClusterKopfPeering", singular="clusterkopfpeering",
        verbs={"get", "list", "watch", "patch"})
    cluster.k.objects["kopf.dev/v1/clusterkopfpeerings", None, "vpipe"] = {
        "apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "vpipe"}}
    running = operator_factory(dataclasses.replace(FAST, peering="vpipe")).start()
    try:
        await cluster.create(pipeline("mock-v1", "peered"))
        await eventually(lambda: cluster.doc("peered"), what="the ConfigMap")
        await eventually(
            lambda: (cluster.get_raw("kopf.dev/v1/clusterkopfpeerings", None, "vpipe") or {})
            .get("status"), what="a keep-alive in the peering object")
    finally:
        await running.stop()
