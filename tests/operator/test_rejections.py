"""Invalid resources against the running operator: conditions, Warning Events, a held ConfigMap.

Each kind of rejection the brief names is covered: a Route naming a missing Pipeline
(PipelineNotFound), a bad regex, a priority tie and an unknown provider family (InvalidSpec, with
Routes of the broken Pipeline PipelineInvalid). A namespace with any invalid resource keeps its
last good ConfigMap (the proxies serve that one anyway); valid, unchanged resources stay Ready,
new valid ones say ConfigHeld. Fixing the problem releases the hold.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.harness import Cluster, OperatorThread, eventually, pipeline, route

NS = "team-b"


async def _served(cluster: Cluster, operator: OperatorThread) -> str:
    await cluster.create(pipeline("mock-v1", NS))
    await cluster.create(route("base", NS, "mock-v1", ["base-*"], priority=10))
    doc = await eventually(lambda: cluster.doc(NS), what="the first good ConfigMap")
    await operator.settle(cluster)
    return doc.revision


def _warnings(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    return [e for e in cluster.events(NS, name) if e["type"] == "Warning"]


@pytest.mark.parametrize(("bad", "reason", "field", "text"), [
    pytest.param(route("bad", NS, "nope", ["x-*"]), "PipelineNotFound", "spec.pipeline",
                 "Pipeline 'nope' does not exist", id="missing-pipeline"),
    pytest.param(route("bad", NS, "mock-v1", ["re:(unclosed"]), "InvalidSpec",
                 "spec.match.models[0]", "", id="bad-regex"),
    pytest.param(route("bad", NS, "mock-v1", ["base-1"], priority=10), "InvalidSpec",
                 "spec.priority", "ties with Route 'base'", id="priority-tie"),
])
async def test_invalid_route(
    cluster: Cluster, operator: OperatorThread, bad: dict[str, Any], reason: str, field: str,
    text: str,
) -> None:
    good_revision = await _served(cluster, operator)
    await cluster.create(bad)

    validated = await eventually(lambda: cluster.condition("Route", NS, "bad", "Validated"),
                                 what="Validated on the bad route")
    assert validated["status"] == "False" and validated["reason"] == reason
    assert validated["message"].startswith(field) and text in validated["message"]
    ready = cluster.condition("Route", NS, "bad", "Ready")
    assert ready["status"] == "False" and ready["reason"] == reason

    events = await eventually(lambda: _warnings(cluster, "bad"), what="a Warning Event")
    assert events[0]["reason"] == reason and text in events[0]["message"]
    assert events[0]["involvedObject"]["kind"] == "Route"

    # The ConfigMap stays at the last good revision; the valid, unchanged route stays served.
    await operator.settle(cluster)
    assert cluster.doc(NS).revision == good_revision
    assert cluster.condition("Route", NS, "base", "Ready")["status"] == "True"

    # Fix it: the hold is released and the route is served.
    await cluster.delete("Route", NS, "bad")
    await cluster.create(route("bad", NS, "mock-v1", ["fixed-*"], generation=2))
    await eventually(lambda: cluster.condition("Route", NS, "bad", "Ready").get("status") == "True",
                     what="the fixed route served")
    assert len(cluster.doc(NS).routes) == 2


async def test_unknown_family(cluster: Cluster, operator: OperatorThread) -> None:
    good_revision = await _served(cluster, operator)
    await cluster.create(pipeline("weird", NS, family="no-such-family"))
    await cluster.create(route("uses-weird", NS, "weird", ["weird-*"]))
    await cluster.create(route("fresh", NS, "mock-v1", ["fresh-*"]))

    validated = await eventually(lambda: cluster.condition("Pipeline", NS, "weird", "Validated"),
                                 what="Validated on the pipeline")
    assert validated["status"] == "False" and validated["reason"] == "InvalidSpec"
    assert "no-such-family" in validated["message"]
    assert await eventually(lambda: _warnings(cluster, "weird"), what="a Warning Event")

    ready = await eventually(lambda: cluster.condition("Route", NS, "uses-weird", "Ready"),
                             what="Ready on the route of the bad pipeline")
    assert ready["status"] == "False" and ready["reason"] == "PipelineInvalid"
    assert cluster.condition("Route", NS, "uses-weird", "Validated")["status"] == "True"
    held = await eventually(lambda: cluster.condition("Route", NS, "fresh", "Ready"),
                            what="Ready on the new valid route")
    assert held["status"] == "False" and held["reason"] == "ConfigHeld"
    assert "Pipeline/team-b/weird" in held["message"]
    await operator.settle(cluster)
    assert cluster.doc(NS).revision == good_revision
