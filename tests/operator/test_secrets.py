"""Secret references against the running operator.

A Pipeline whose credentials name a missing Secret (or key) holds the namespace's ConfigMap at
its last good revision (a proxy could not load the config anyway), shows Ready=False
SecretNotFound naming the Secret and key, its Routes show Ready=False PipelineNotReady, what
the held revision serves stays Ready, and a Warning Event says how to create it. Secrets are
never watched: the operator re-checks on a timer, so creating the Secret writes the config and
flips both to Ready=True. Only GETs by name touch Secrets, and their values never reach the
ConfigMap.
"""

from __future__ import annotations

import base64

from tests.operator.harness import Cluster, OperatorThread, eventually, pipeline, route

NS = "team-c"
SECRET_VALUE = "sk-very-secret-value"


async def test_missing_secret_then_created(cluster: Cluster, operator: OperatorThread) -> None:
    creds = {"secretRef": {"name": "openai", "key": "api-key"}}
    await cluster.create(pipeline("mock", NS))
    await cluster.create(route("mock", NS, "mock", ["mock-*"]))
    first = await eventually(lambda: cluster.doc(NS), what="the ConfigMap")
    await eventually(lambda: cluster.condition("Route", NS, "mock", "Ready")["status"] == "True",
                     what="the mock route served")
    await cluster.create(pipeline("openai", NS, family="openai", credentials=creds))
    await cluster.create(route("gpt", NS, "openai", ["gpt-*"]))

    ready = await eventually(lambda: cluster.condition("Pipeline", NS, "openai", "Ready"),
                             what="Ready on the pipeline")
    assert ready["status"] == "False" and ready["reason"] == "SecretNotFound"
    assert "stays at its last good revision" in ready["message"]
    doc = cluster.document(NS)
    assert doc is not None and doc.revision == first.revision and set(doc.pipelines) == {"mock"}
    assert "Secret 'openai'" in ready["message"] and "'api-key'" in ready["message"]
    await operator.settle(cluster)
    route_ready = cluster.condition("Route", NS, "gpt", "Ready")
    assert route_ready["status"] == "False" and route_ready["reason"] == "PipelineNotReady"
    assert cluster.condition("Route", NS, "mock", "Ready")["status"] == "True"
    events = await eventually(lambda: cluster.events(NS, "openai"), what="a Warning Event")
    assert events[0]["reason"] == "SecretNotFound" and "kubectl create secret" in events[0]["message"]

    # A Secret without the key is still not enough.
    await cluster.create({"apiVersion": "v1", "kind": "Secret",
                          "metadata": {"name": "openai", "namespace": NS},
                          "data": {"other": base64.b64encode(b"x").decode()}})
    await eventually(lambda: "has no key 'api-key'" in
                     cluster.condition("Pipeline", NS, "openai", "Ready")["message"],
                     what="the missing key reported")

    await cluster.patch("Secret", NS, "openai",
                        {"data": {"api-key": base64.b64encode(SECRET_VALUE.encode()).decode()}})
    await eventually(lambda: cluster.condition("Pipeline", NS, "openai", "Ready")["status"] == "True",
                     what="the pipeline Ready once the Secret has the key")
    await eventually(lambda: cluster.condition("Route", NS, "gpt", "Ready")["status"] == "True",
                     what="its route Ready")
    served = cluster.document(NS)
    assert served is not None and set(served.pipelines) == {"openai", "mock"}
    cm = cluster.configmap(NS)
    assert cm is not None and SECRET_VALUE not in str(cm)
    secret_requests = {(r.method.value, r.url.path) for r in cluster.operator_requests()
                       if "/secrets" in r.url.path}
    assert secret_requests == {("GET", f"/api/v1/namespaces/{NS}/secrets/openai")}
