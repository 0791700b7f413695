"""The ConfigMap is the operator's: hand edits and deletions are repaired.

The operator watches ConfigMaps labelled app.kubernetes.io/managed-by=vpipe; when the data or
the revision annotation drift from the rendered config (or the ConfigMap disappears), the
namespace is re-rendered and the ConfigMap written back, foreign keys removed.
"""

from __future__ import annotations

from tests.operator.harness import Cluster, OperatorThread, eventually, pipeline, route
from vpipe_api.document import CONFIGMAP_KEY, CONFIGMAP_NAME, REVISION_ANNOTATION

NS = "team-r"


async def test_hand_edits_repaired(cluster: Cluster, operator: OperatorThread) -> None:
    await cluster.create(pipeline("mock-v1", NS))
    await cluster.create(route("r", NS, "mock-v1", ["m-*"]))
    await eventually(lambda: cluster.doc(NS), what="the ConfigMap")
    await operator.settle(cluster)
    original = cluster.configmap(NS)
    assert original is not None

    def repaired() -> bool:
        cm = cluster.configmap(NS)
        return cm is not None and cm["data"] == original["data"] and (
            cm["metadata"]["annotations"] == original["metadata"]["annotations"])

    await cluster.patch("ConfigMap", NS, CONFIGMAP_NAME,
                        {"data": {CONFIGMAP_KEY: "{}", "extra": "by hand"}})
    await eventually(repaired, what="edited data repaired, foreign key removed")

    await cluster.patch("ConfigMap", NS, CONFIGMAP_NAME,
                        {"metadata": {"annotations": {REVISION_ANNOTATION: "bogus"}}})
    await eventually(repaired, what="the revision annotation repaired")

    await cluster.delete("ConfigMap", NS, CONFIGMAP_NAME)
    await eventually(repaired, what="the deleted ConfigMap recreated")
