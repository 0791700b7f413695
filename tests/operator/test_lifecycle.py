"""The operator end to end against kmock: create, update and delete Pipelines and Routes.

Covers the ConfigMap content (parsed with `parse_document`), its labels and revision annotation,
status conditions (Validated, Ready), observedGeneration and configRevision, and the ConfigMap's
removal when the namespace's last Pipeline/Route is gone.
"""

from __future__ import annotations

from tests.operator.harness import Cluster, OperatorThread, eventually, pipeline, route
from vpipe_api.document import REVISION_ANNOTATION

NS = "team-a"


async def test_create_update_delete(cluster: Cluster, operator: OperatorThread) -> None:
    await cluster.create(pipeline("mock-v1", NS))
    await cluster.create(route("gpt", NS, "mock-v1", ["gpt-*"]))

    doc = await eventually(lambda: cluster.doc(NS), what="the ConfigMap")
    assert [r.name for r in doc.routes] == ["gpt"]
    assert doc.routes[0].models == ["gpt-*"] and doc.routes[0].pipeline == "mock-v1"
    assert list(doc.pipelines) == ["mock-v1"]
    cm = cluster.configmap(NS)
    assert cm is not None
    assert cm["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "vpipe"
    assert cm["metadata"]["annotations"][REVISION_ANNOTATION] == doc.revision

    ready = await eventually(lambda: cluster.condition("Route", NS, "gpt", "Ready"),
                             what="Route Ready")
    assert ready["status"] == "True" and ready["reason"] == "Served"
    assert ready["observedGeneration"] == 1
    for kind, name in (("Pipeline", "mock-v1"), ("Route", "gpt")):
        obj = cluster.get(kind, NS, name)
        assert obj is not None
        assert obj["status"]["configRevision"] == doc.revision
        assert obj["status"]["observedGeneration"] == 1
        validated = cluster.condition(kind, NS, name, "Validated")
        assert validated["status"] == "True" and validated["reason"] == "Valid"

    # Update: new models and a bumped generation.
    await cluster.patch("Route", NS, "gpt", {"metadata": {"generation": 2},
                                              "spec": {"match": {"models": ["gpt-4o", "o1"]}}})
    doc2 = await eventually(
        lambda: cluster.doc_where(NS, lambda d: d.routes[0].models == ["gpt-4o", "o1"]),
        what="the updated route in the ConfigMap")
    assert doc2.revision != doc.revision
    await eventually(
        lambda: (cluster.get("Route", NS, "gpt") or {}).get("status", {}).get("configRevision")
        == doc2.revision, what="configRevision of the updated route")
    assert cluster.condition("Route", NS, "gpt", "Ready")["observedGeneration"] == 2

    # A second route, then delete the first one.
    await cluster.create(route("claude", NS, "mock-v1", ["claude-*"]))
    await eventually(lambda: len(cluster.doc(NS).routes) == 2, what="two routes")
    await cluster.delete("Route", NS, "gpt")
    doc3 = await eventually(
        lambda: cluster.doc_where(NS, lambda d: [r.name for r in d.routes] == ["claude"]),
        what="the deleted route gone from the ConfigMap")
    assert doc3.routes[0].models == ["claude-*"]

    # The namespace's last resources go: so does the ConfigMap.
    await cluster.delete("Route", NS, "claude")
    await cluster.delete("Pipeline", NS, "mock-v1")
    await eventually(lambda: cluster.configmap(NS) is None, what="the ConfigMap deleted")
