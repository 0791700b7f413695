"""A config over the 1 MiB ConfigMap limit is never truncated or written.

Every resource gets Ready=False ConfigTooLarge (Validated stays True: nothing is wrong with any
one of them), Warning Events are posted up to VPIPE_OPERATOR_MAX_EVENTS per reconcile, and the
last good ConfigMap stays (here: whichever smaller set of Routes the last reconcile under the
limit saw, since the Routes arrive in several watch batches). Removing enough Routes brings the
namespace back under the limit.
"""

from __future__ import annotations

from tests.operator.harness import Cluster, OperatorThread, eventually, pipeline, route

NS = "team-big"
ROUTES = 130
MODELS = 90


def _models(index: int) -> list[str]:
    return [f"model-{index:04d}-{j:03d}-" + "x" * 80 for j in range(MODELS)]


async def test_config_too_large(cluster: Cluster, operator: OperatorThread) -> None:
    await cluster.create(pipeline("mock-v1", NS))
    await cluster.create(route("small", NS, "mock-v1", ["small"]))
    await eventually(lambda: cluster.doc(NS), what="the first, small config")
    await operator.settle(cluster)

    await cluster.create_all(route(f"big-{i}", NS, "mock-v1", _models(i)) for i in range(ROUTES))
    ready = await eventually(
        lambda: (c := cluster.condition("Route", NS, f"big-{ROUTES - 1}", "Ready"))
        and c["reason"] == "ConfigTooLarge" and c,
        what="ConfigTooLarge on the big routes", timeout=30)
    assert ready["status"] == "False" and "1048576-byte ConfigMap limit" in ready["message"]
    assert cluster.condition("Route", NS, "big-0", "Validated")["status"] == "True"
    await operator.settle(cluster)
    assert cluster.condition("Route", NS, "small", "Ready")["reason"] == "ConfigTooLarge"
    assert cluster.condition("Pipeline", NS, "mock-v1", "Ready")["reason"] == "ConfigTooLarge"
    held = cluster.configmap(NS)
    assert held is not None and len(str(held["data"])) < 1024 * 1024  # never truncated, just kept
    revision = cluster.doc(NS).revision
    assert f"(revision {revision})" in ready["message"]
    events = cluster.events(NS)
    assert 0 < len(events) <= 50 and {e["reason"] for e in events} == {"ConfigTooLarge"}

    for i in range(ROUTES // 2):
        await cluster.delete("Route", NS, f"big-{i}")
    doc = await eventually(lambda: cluster.doc_where(NS, lambda d: d.revision != revision),
                           what="the config written again under the limit", timeout=30)
    assert len(doc.routes) == ROUTES - ROUTES // 2 + 1
