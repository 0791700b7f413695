"""`vpipe operator` against a real kube-apiserver, as the chart's ServiceAccount with its RBAC.

The operator is the console script users run, with the environment the chart's Deployment gives
it and a kubeconfig holding a TokenRequest token of the chart's ServiceAccount, bound only by
the chart's ClusterRole. Any request the chart does not grant is refused by the real RBAC
authorizer and shows in the operator's log as a 403, which fails the test (`assert_no_forbidden`).

- Pipelines and Routes become the namespace's ConfigMap; statuses carry conditions and
  observedGeneration; a broken Route gets Validated=False and a Warning Event; `kubectl get`
  shows it; deleting resources updates the ConfigMap, deleting the last one removes it.
- Killed (SIGKILL) in the middle of a reconcile and started again, it converges; a restart of
  a converged namespace writes nothing (resourceVersions unchanged).
- Two replicas with kopf peering: the higher priority one serves, the other pauses, and takes
  over when the first stops.
- Every request it makes, recorded on its way to the API server, against the chart's
  ClusterRole: none missing, none granted and unused.
- The in-cluster credentials (mounted ServiceAccount files) reach the API server.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kapi.conftest import (
    Process,
    assert_no_forbidden,
    condition,
    path,
    pipeline,
    rendered_chart,
    route,
    wait_for,
)
from tests.kapi.controlplane import Api, ControlPlane
from tests.kapi.recorder import Recorder
from tests.operator.harness import rbac_key
from vpipe_operator import errors
from vpipe_operator.credentials import Credentials, load_credentials
from vpipe_operator.kube import PIPELINES, ROUTES, KubeClient

CONFIGMAP = "vpipe-config"

# Session start-up (kapi, kubectl) is charged to the first test that needs it.
pytestmark = pytest.mark.timeout(300)


def config(api: Api, ns: str) -> dict[str, Any] | None:
    cm = api.find(path("ConfigMap", ns, CONFIGMAP))
    return json.loads(cm["data"]["config.json"]) if cm else None


def served_routes(api: Api, ns: str) -> set[str]:
    doc = config(api, ns) or {}
    return {r["name"] for r in doc.get("routes") or []}


def ready(api: Api, kind: str, ns: str, name: str) -> dict[str, Any] | None:
    obj = api.find(path(kind, ns, name))
    c = condition(obj, "Ready")
    if c and c["status"] == "True" and obj and \
            obj["status"].get("observedGeneration") == obj["metadata"]["generation"]:
        return obj
    return None


def test_operator_reconciles_as_the_charts_service_account(
        kapi: ControlPlane, api: Api, ns: str, run_operator: Callable[..., Process]) -> None:
    operator = run_operator("-n", ns)
    api.create(path("Pipeline", ns), pipeline("mock-v1"))
    api.create(path("Route", ns), route("chat", "mock-v1", ["gpt-*"]))
    wait_for(lambda: served_routes(api, ns) == {"chat"}, what="the route in vpipe-config")
    cm = api.get(path("ConfigMap", ns, CONFIGMAP))
    assert cm["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "vpipe"
    served = wait_for(lambda: ready(api, "Route", ns, "chat"), what="Route chat Ready")
    revision = cm["metadata"]["annotations"]["vpipe.io/revision"]
    assert served["status"]["configRevision"] == revision
    assert condition(served, "Validated")["status"] == "True"  # type: ignore[index]
    wait_for(lambda: ready(api, "Pipeline", ns, "mock-v1"), what="Pipeline Ready")

    # A Route naming no Pipeline: refused in its status and by a Warning Event.
    api.create(path("Route", ns), route("broken", "nope", ["claude-*"]))
    refused = wait_for(lambda: (c := condition(api.find(path("Route", ns, "broken")), "Validated"))
                       and c["status"] == "False" and c, what="broken Route Validated=False")
    assert refused["reason"] == "PipelineNotFound" and "nope" in refused["message"]
    events = wait_for(lambda: [e for e in api.get(path("Event", ns))["items"]
                               if e["involvedObject"]["name"] == "broken"], what="an Event")
    assert events[0]["type"] == "Warning" and events[0]["reason"] == "PipelineNotFound"
    assert events[0]["involvedObject"]["kind"] == "Route"
    shown = kapi.kubectl("get", "routes", "-n", ns, "broken", "--no-headers").stdout.split()
    assert "False" in shown, shown

    # Deleting resources: the ConfigMap follows; without any left, it goes.
    api.delete(path("Route", ns, "broken"))
    api.create(path("Route", ns), route("second", "mock-v1", ["o1-*"]))
    wait_for(lambda: served_routes(api, ns) == {"chat", "second"}, what="two routes served")
    api.delete(path("Route", ns, "second"))
    wait_for(lambda: served_routes(api, ns) == {"chat"}, what="the deleted route gone")
    api.delete(path("Route", ns, "chat"))
    api.delete(path("Pipeline", ns, "mock-v1"))
    wait_for(lambda: api.find(path("ConfigMap", ns, CONFIGMAP)) is None,
             what="vpipe-config deleted with the last resource")
    assert_no_forbidden(operator)


def versions(api: Api, ns: str) -> dict[str, str]:
    """resourceVersion of every object the operator writes in `ns` (Events aside)."""
    found = {f"ConfigMap/{CONFIGMAP}": api.get(path("ConfigMap", ns, CONFIGMAP))
             ["metadata"]["resourceVersion"]}
    for kind in ("Pipeline", "Route"):
        for obj in api.get(path(kind, ns))["items"]:
            found[f"{kind}/{obj['metadata']['name']}"] = obj["metadata"]["resourceVersion"]
    return found


def all_ready(api: Api, ns: str, count: int) -> bool:
    routes = api.get(path("Route", ns))["items"]
    return len(routes) == count and all(
        (c := condition(r, "Ready")) and c["status"] == "True"
        and r["status"].get("observedGeneration") == r["metadata"]["generation"] for r in routes)


def test_killed_mid_reconcile_then_restarted_converges_without_spurious_writes(
        api: Api, ns: str, run_operator: Callable[..., Process]) -> None:
    count = 15
    first = run_operator("-n", ns, name="first")
    for i in range(count):
        api.create(path("Pipeline", ns), pipeline(f"p{i}"))
        api.create(path("Route", ns), route(f"r{i}", f"p{i}", [f"model-{i}"]))
    # Killed as soon as it has written anything: statuses are still being patched.
    wait_for(lambda: api.find(path("ConfigMap", ns, CONFIGMAP)), what="a first ConfigMap",
             interval=0.02)
    first.stop(signal.SIGKILL)
    second = run_operator("-n", ns, name="second")
    wait_for(lambda: all_ready(api, ns, count) and served_routes(api, ns) == {
        f"r{i}" for i in range(count)}, what="every Route Ready after the restart")
    time.sleep(1.0)  # let any straggling write land before taking the baseline
    before = versions(api, ns)
    assert second.stop() == 0
    third = run_operator("-n", ns, "--verbose", name="third")  # a no-op reconcile logs at debug
    # Its first reconcile finds nothing to change: it says so, and no resourceVersion moved.
    line = wait_for(lambda: next((x for x in third.log().splitlines()
                                  if f"Namespace {ns} reconciled in" in x), None),
                    what="the third operator's first reconcile")
    assert line.endswith("; 0 writes"), line
    time.sleep(1.0)  # and nothing trickles in after it
    assert versions(api, ns) == before
    cm = api.get(path("ConfigMap", ns, CONFIGMAP))
    managers = {(m["manager"], m["operation"]) for m in cm["metadata"]["managedFields"]}
    assert len(managers) == 1, managers  # only the operator ever wrote it
    for process in (second, third):
        assert_no_forbidden(process)


def test_two_replicas_with_peering_one_serves(
        kapi: ControlPlane, api: Api, ns: str, run_operator: Callable[..., Process]) -> None:
    values = {"operator": {"namespaces": [ns], "peering": {"enabled": True}}}
    peering = [d for d in rendered_chart(values) if d["kind"] == "KopfPeering"]
    assert [p["metadata"]["namespace"] for p in peering] == [ns]
    api.create(f"/apis/kopf.dev/v1/namespaces/{ns}/kopfpeerings", peering[0])
    active = run_operator(name="active", values=values, VPIPE_OPERATOR_PRIORITY="100")
    standby = run_operator(name="standby", values=values, VPIPE_OPERATOR_PRIORITY="10")
    peers = f"/apis/kopf.dev/v1/namespaces/{ns}/kopfpeerings/{peering[0]['metadata']['name']}"
    keepalives = wait_for(lambda: len(s := api.get(peers).get("status") or {}) == 2 and s,
                          what="both replicas' keep-alives in the KopfPeering")
    assert sorted(k["priority"] for k in keepalives.values()) == [10, 100]
    api.create(path("Pipeline", ns), pipeline("mock-v1"))
    api.create(path("Route", ns), route("chat", "mock-v1", ["gpt-*"]))
    wait_for(lambda: served_routes(api, ns) == {"chat"}, what="the active replica serving")
    # kopf starts a peered operator paused; only the highest priority one resumes.
    assert "Resuming operations" in active.log() and "created ConfigMap" in active.log()
    assert "Resuming operations" not in standby.log()
    assert "created ConfigMap" not in standby.log()

    assert active.stop() == 0  # a clean stop leaves the peering: the standby resumes
    wait_for(lambda: "Resuming operations" in standby.log(), what="the standby resuming",
             timeout=60)
    api.create(path("Route", ns), route("second", "mock-v1", ["o1-*"]))
    wait_for(lambda: served_routes(api, ns) == {"chat", "second"}, what="the standby serving")
    for process in (active, standby):
        assert_no_forbidden(process)


def chart_grants(values: dict[str, Any]) -> set[tuple[str, str, str]]:
    role = next(d for d in rendered_chart(values) if d["kind"] == "ClusterRole")
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


# Granted by the chart, never used by the operator in the scenario below, and why they stay.
# (It granted clusterkopfpeerings to namespaced operators too, until this test said so.)
GRANTED_UNUSED: dict[tuple[str, str, str], str] = {}


def test_the_operator_uses_what_the_chart_grants(
        kapi: ControlPlane, api: Api, ns: str, run_operator: Callable[..., Process],
        chart_identity: Path, tmp_path: Path) -> None:
    """Every request the operator makes, recorded on the way to the API server, against the
    chart's ClusterRole: nothing missing (the real authorizer would refuse it anyway), and
    every grant is used or listed in GRANTED_UNUSED with the reason."""
    values = {"operator": {"namespaces": [ns], "peering": {"enabled": True}}}
    peering = next(d for d in rendered_chart(values) if d["kind"] == "KopfPeering")
    api.create(f"/apis/kopf.dev/v1/namespaces/{ns}/kopfpeerings", peering)
    with Recorder(kapi.server, kapi.ca) as recorder:
        config = yaml.safe_load(chart_identity.read_text())  # the chart's ServiceAccount token
        config["clusters"][0]["cluster"] = {"server": recorder.url}
        kubeconfig = tmp_path / "recorded-kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(config))
        operator = run_operator(values=values, KUBECONFIG=str(kubeconfig))
        try:
            # Everything the operator does: ConfigMap create/patch/delete, statuses, Events, a
            # missing Secret, a rollout action (Route patch), the sidecar gate (pods).
            api.create(path("Pipeline", ns), pipeline("v1"))
            api.create(path("Pipeline", ns), pipeline("v3"))
            api.create(path("Route", ns), route("chat", "v1", ["gpt-*"],
                                                canary={"pipeline": "v3", "steps": [10, 50]}))
            wait_for(lambda: served_routes(api, ns) == {"chat"}, what="the route served")
            # A missing Secret holds the ConfigMap at its last good revision (the operator reads
            # Secrets for that), so it comes once there is one, and goes before the writes after.
            api.create(path("Pipeline", ns), pipeline(
                "v2", family="openai", credentials={"secretRef": {"name": "missing"}}))
            wait_for(lambda: (c := condition(api.find(path("Pipeline", ns, "v2")), "Ready"))
                     and c["reason"] == "SecretNotFound", what="v2 SecretNotFound")
            api.delete(path("Pipeline", ns, "v2"))
            api.merge_patch(path("Route", ns, "chat"),
                            {"metadata": {"annotations": {"vpipe.io/rollout": "promote"}}})
            wait_for(lambda: api.get(path("Route", ns, "chat"))["status"].get("activeWeight") == 10,
                     what="the promote applied")
            api.create(path("Route", ns), route("broken", "nope", ["x"]))
            wait_for(lambda: any(e["involvedObject"]["name"] == "broken"
                                 for e in api.get(path("Event", ns))["items"]), what="an Event")
            api.merge_patch(path("ConfigMap", ns, CONFIGMAP), {"data": {"extra": "hand edit"}})
            api.delete(path("Route", ns, "broken"))
            wait_for(lambda: "extra" not in api.get(path("ConfigMap", ns, CONFIGMAP))["data"],
                     what="the hand edit repaired")
            for kind, name in (("Route", "chat"), ("Pipeline", "v1"), ("Pipeline", "v3")):
                api.delete(path(kind, ns, name))
            wait_for(lambda: api.find(path("ConfigMap", ns, CONFIGMAP)) is None,
                     what="vpipe-config deleted")
        finally:
            stopped = operator.stop()
    assert stopped == 0
    used = {key for method, url, query in recorder.calls()
            if (key := rbac_key(method, url, query)) is not None}
    grants = chart_grants(values)
    assert not used - grants, f"used but not granted: {sorted(used - grants)}"
    unused = grants - used
    print("granted but unused:", sorted(unused))
    assert unused == set(GRANTED_UNUSED), sorted(unused)
    assert_no_forbidden(operator)


def mounted_service_account(kapi: ControlPlane, identity: Path, directory: Path) -> Credentials:
    """What a pod sees: the ServiceAccount's files and the KUBERNETES_SERVICE_* variables."""
    token = yaml.safe_load(identity.read_text())["users"][0]["user"]["token"]
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_bytes(kapi.ca.read_bytes())
    (directory / "namespace").write_text("vpipe-system")
    host, _, port = kapi.server.removeprefix("https://").rpartition(":")
    return load_credentials({"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port},
                            service_account_dir=directory)


async def test_in_cluster_credentials_reach_the_api_server(
        kapi: ControlPlane, api: Api, ns: str, chart_identity: Path, tmp_path: Path) -> None:
    """In a pod the operator reads the mounted ServiceAccount (token, ca.crt, namespace); the
    same files, laid out here, reach the real API server, its certificate checked."""
    credentials = mounted_service_account(kapi, chart_identity, tmp_path)
    assert credentials.namespace == "vpipe-system" and credentials.ca_path
    api.create(path("Route", ns), route("chat", "v1", ["gpt-*"]))
    async with KubeClient(credentials) as client:
        routes = await client.list(ROUTES, ns)
        assert [r["metadata"]["name"] for r in routes] == ["chat"]
        with pytest.raises(errors.Forbidden):  # the chart's role: no reading Pipelines by name
            await client.get(PIPELINES, ns, "v1")
