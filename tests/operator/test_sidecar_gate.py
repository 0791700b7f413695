"""The sidecar gate end to end: kmock as the API server, real proxies reading the ConfigMap
through it, and Pods pointing the operator at the proxies' real admin ports.

Aspects: Route status says "loaded by N of M sidecars" and the Sidecars column's N/M; while a
proxy does not serve the ConfigMap's revision (here: one that does not answer), a promote stays
pending (its annotation is kept, the weight stays 0) and applies once every running proxy
serves it; the proxies then serve the new weight; a proxy that cannot load the canary holds it
at 0 and the status carries the load error; `vpipe rollout promote` says the promote is pending
and why; rollout transitions post Events; with the gate off, pods are neither listed nor
watched.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.operator.harness import (
    FAST,
    Cluster,
    OperatorThread,
    eventually,
    pipeline,
    route,
    write_kubeconfig,
)
from tests.operator.test_rollout import act, status
from tests.support.proxy import unused_port
from vpipe_cli.main import CLI_USER_AGENT, main
from vpipe_operator import rollout, sidecars
from vpipe_proxy.kube_source import KubernetesConfigSource
from vpipe_proxy.server import ProxyServer
from vpipe_proxy.settings import Settings

NS = "team-r"


def stepped() -> dict[str, Any]:
    obj = route("glm", NS, "glm-v1", ["glm-*"])
    obj["spec"]["canary"] = {"pipeline": "glm-v2", "steps": [5, 50]}
    return obj


def proxy_pod(name: str, admin_port: int) -> dict[str, Any]:
    """A Pod as the injection webhook leaves it, running on 127.0.0.1."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {sidecars.LABEL: "sidecar"}},
        "spec": {"containers": [
            {"name": "app", "image": "app"},
            {"name": "vpipe-proxy", "image": "vpipe-proxy", "ports": [
                {"name": "vpipe-admin", "containerPort": admin_port}]}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1"},
    }


@asynccontextmanager
async def running_proxies(cluster: Cluster, count: int) -> AsyncIterator[list[ProxyServer]]:
    """`count` real proxies watching the namespace's ConfigMap through kmock."""
    async with AsyncExitStack() as stack:
        servers = []
        for _ in range(count):
            server = ProxyServer(Settings(port=0, admin_port=0, wait_for_config=True),
                                 KubernetesConfigSource(NS, cluster.url), environ={})
            await server.start()
            stack.push_async_callback(server.stop)
            servers.append(server)
        yield servers


def serves(server: ProxyServer, revision: str | None) -> bool:
    current = server.reloader.current
    return current is not None and current.revision == revision


async def test_a_promote_waits_until_every_proxy_serves_the_config(
        cluster: Cluster, operator: OperatorThread) -> None:
    await cluster.create_all([pipeline("glm-v1", NS), pipeline("glm-v2", NS), stepped()])
    async with running_proxies(cluster, 2) as proxies:
        await cluster.create_all([proxy_pod(f"app-{i}", p.admin_port) for i, p in enumerate(proxies)])
        await cluster.create(proxy_pod("app-dead", unused_port()))

        first = await eventually(lambda: (status(cluster).get("sidecars") or {}).get("total") == 3
                                 and status(cluster)["sidecars"], what="3 sidecars counted")
        revision = cluster.doc(NS).revision
        await eventually(lambda: all(serves(p, revision) for p in proxies) or None,
                         what="both live proxies serving the first revision")
        counted = await eventually(
            lambda: (s := status(cluster)["sidecars"])["loaded"] == 2 and s, what="2 of 3 loaded")
        assert counted["summary"] == "2/3" and counted["revision"] == revision
        assert counted["message"].startswith("loaded by 2 of 3 sidecars (app-dead: unreachable")
        assert first["revision"] == revision

        await cluster.patch("Route", NS, "glm",
                            {"metadata": {"annotations": {rollout.ANNOTATION: "promote"}}})
        waiting = await eventually(
            lambda: (r := status(cluster)["rollout"])["message"].startswith("waiting: promote")
            and r, what="the promote held by the gate")
        assert waiting["phase"] == "Idle" and status(cluster)["activeWeight"] == 0
        assert f"applies once revision {revision} is loaded by 2 of 3 sidecars" in \
            waiting["message"]
        annotations = cluster.get("Route", NS, "glm")["metadata"]["annotations"]  # type: ignore[index]
        assert annotations[rollout.ANNOTATION] == "promote"  # pending, not consumed
        assert cluster.doc(NS).revision == revision  # nothing changed for the proxies

        await cluster.delete("Pod", NS, "app-dead")
        await eventually(lambda: status(cluster).get("activeWeight") == 5 or None,
                         what="the promote applied once every proxy serves the config")
        assert rollout.ANNOTATION not in (cluster.get("Route", NS, "glm")["metadata"]  # type: ignore[index]
                                          .get("annotations") or {})
        new_revision = cluster.doc(NS).revision
        assert new_revision != revision
        await eventually(lambda: all(serves(p, new_revision) for p in proxies) or None,
                         what="the proxies serving the step's weight")
        for proxy in proxies:
            runtime = proxy.reloader.current
            assert runtime is not None
            assert runtime.document.routes[0].canary is not None
            assert runtime.document.routes[0].canary.weight == 5
        await eventually(lambda: status(cluster)["sidecars"]["summary"] == "2/2" or None,
                         what="2 of 2 loaded")
        events = [e for e in cluster.events(NS, "glm") if e["reason"].startswith("Rollout")]
        assert [(e["type"], e["reason"]) for e in events] == [("Normal", "RolloutStep")]
        assert events[0]["message"] == "promoted to step 0 of 2 (5%)"


async def test_no_proxies_no_wait_and_events_for_every_transition(
        cluster: Cluster, operator: OperatorThread) -> None:
    await cluster.create_all([pipeline("glm-v1", NS), pipeline("glm-v2", NS), stepped()])
    await eventually(lambda: status(cluster).get("sidecars"), what="the sidecar count")
    assert status(cluster)["sidecars"]["summary"] == "0/0"
    await act(cluster, "promote")
    await act(cluster, "abort", "errors in the canary")
    await act(cluster, "resume")
    await act(cluster, "resume")  # nothing to resume: refused, with a Warning
    await eventually(lambda: len([e for e in cluster.events(NS, "glm")
                                  if e["reason"].startswith("Rollout")]) == 4 or None,
                     what="four rollout Events")
    events = [(e["type"], e["reason"]) for e in cluster.events(NS, "glm")
              if e["reason"].startswith("Rollout")]
    assert sorted(events) == sorted([("Normal", "RolloutStep"), ("Warning", "RolloutAborted"),
                                     ("Normal", "RolloutResumed"),
                                     ("Warning", "RolloutActionRefused")])


async def test_with_the_gate_off_pods_are_not_read(cluster: Cluster, operator_factory: Any,
                                                   ) -> None:
    running = operator_factory(dataclasses.replace(FAST, sidecar_gate=False)).start()
    try:
        await cluster.create_all([pipeline("glm-v1", NS), pipeline("glm-v2", NS), stepped(),
                                  proxy_pod("app-dead", unused_port())])
        await act(cluster, "promote")
        await eventually(lambda: status(cluster).get("activeWeight") == 5 or None,
                         what="the promote applied without a gate")
        assert "sidecars" not in status(cluster)
        assert not [r for r in cluster.operator_requests() if "/pods" in r.url.path]
    finally:
        await running.stop()


async def test_a_proxy_that_cannot_load_the_canary_keeps_it_at_zero_and_says_why(
        cluster: Cluster, operator: OperatorThread) -> None:
    # The canary's upstream is down: the proxy refuses the config that carries it (warm-up
    # fails) and keeps serving what it had, so the canary must take no traffic anywhere.
    broken = pipeline("glm-v2", NS, family="vllm", baseUrl=f"http://127.0.0.1:{unused_port()}/v1")
    await cluster.create_all([pipeline("glm-v1", NS), route("glm", NS, "glm-v1", ["glm-*"])])
    async with running_proxies(cluster, 1) as [proxy]:
        await cluster.create(proxy_pod("app-0", proxy.admin_port))
        await eventually(lambda: proxy.reloader.current, what="the proxy's first config")
        await cluster.create(broken)
        await cluster.patch("Route", NS, "glm", {"spec": {"canary": {
            "pipeline": "glm-v2", "steps": [10]}}, "metadata": {
            "annotations": {rollout.ANNOTATION: "promote"}}})
        held = await eventually(
            lambda: "warm-up failed" in (status(cluster).get("sidecars") or {}).get("message", "")
            and status(cluster), what="the failed load reported")
        assert held["activeWeight"] == 0
        assert held["sidecars"]["summary"] == "0/1"
        assert held["rollout"]["message"].startswith("waiting: promote to 10% applies once")
        assert "could not connect to upstream" in held["rollout"]["message"]
        runtime = proxy.reloader.current
        assert runtime is not None and runtime.document.routes[0].canary is None


async def test_the_cli_says_a_promote_is_pending_and_why(
        cluster: Cluster, operator: OperatorThread, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path, cluster.url)))
    await cluster.create_all([pipeline("glm-v1", NS), pipeline("glm-v2", NS), stepped(),
                              proxy_pod("app-dead", unused_port())])
    await eventually(lambda: (status(cluster).get("sidecars") or {}).get("total") == 1 or None,
                     what="the sidecar counted")
    assert await asyncio.to_thread(main, ["rollout", "promote", "glm", "-n", NS]) == 0
    out = capsys.readouterr().out
    assert "requested promote; it is pending" in out
    assert "sidecars:      0/1 serve revision" in out and "app-dead: unreachable" in out
    assert "waiting: promote to 5% applies once" in out
    # The CLI acts as a user, not as the operator: keep its requests out of the RBAC audit.
    cluster.compact()
    cluster._archive[:] = [r for r in cluster._archive
                           if r.headers.get("User-Agent") != CLI_USER_AGENT]
