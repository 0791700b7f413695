"""What the rollout gates cost the operator: prints figures with conditions, asserts nothing.

1. Pure reconcile of one namespace whose N Routes all have a stepped canary with analysis and
   whose proxies all serve the ConfigMap's revision: steady (one render), and with every Route
   promoted in the same reconcile (the second render, only when some weight rises).
2. One sidecar report: the operator asking M proxies' /readyz (real aiohttp servers on
   127.0.0.1 answering like the proxy's admin port) through `observe.Observer`.

Run: python bench/bench_rollout_gate.py [N] [M ...]
"""

from __future__ import annotations

import asyncio
import platform
import statistics
import sys
import time
from typing import Any

from aiohttp import web

from vpipe_api.render import configmap_manifest
from vpipe_operator import reconcile, rollout, sidecars
from vpipe_operator.observe import Observer
from vpipe_operator.settings import OperatorSettings

NOW = "2026-01-01T00:00:00Z"


def objects(count: int, *, promote: bool) -> list[dict[str, Any]]:
    pipelines = [{"apiVersion": "vpipe.io/v1alpha1", "kind": "Pipeline",
                  "metadata": {"name": name, "namespace": "ns", "generation": 1, "uid": name},
                  "spec": {"modules": [{"type": "provider", "provider": {"family": "mock"}}]}}
                 for name in ("v1", "v2")]
    annotations = {rollout.ANNOTATION: "promote"} if promote else {}
    routes = [{"apiVersion": "vpipe.io/v1alpha1", "kind": "Route",
               "metadata": {"name": f"r-{i}", "namespace": "ns", "generation": 1, "uid": f"r{i}",
                            "annotations": annotations},
               "spec": {"match": {"models": [f"model-{i}"]}, "pipeline": "v1", "canary": {
                   "pipeline": "v2", "steps": [5, 50], "analysis": {
                       "metrics": [{"name": "success-rate", "min": 0.99}]}}}}
              for i in range(count)]
    return [*pipelines, *routes]


def snapshot(objs: list[dict[str, Any]], proxies: int) -> reconcile.Snapshot:
    observed = tuple(reconcile.Observed.from_api(o["kind"], o) for o in objs)
    bare = reconcile.Snapshot("ns", observed, None)
    document = reconcile.analyze(bare).document
    assert document is not None
    served = configmap_manifest(document)
    report = sidecars.Report(tuple(sidecars.Observation(f"pod-{i}", document.revision)
                                   for i in range(proxies)))
    return reconcile.Snapshot("ns", observed, served, sidecars=report)


def pure(count: int) -> None:
    print(f"pure reconcile, {count} Routes with stepped canaries + analysis, 3 proxies serving "
          "the ConfigMap's revision, median of 5:")
    for promote in (False, True):
        snap = snapshot(objects(count, promote=promote), 3)
        times = []
        for _ in range(5):
            started = time.perf_counter()
            analysis = reconcile.analyze(snap)
            plan = reconcile.decide(analysis, {}, now=NOW)
            times.append(time.perf_counter() - started)
        raised = sum(1 for _, state in plan.rollouts.values() if state.active_weight > 0)
        what = "every Route promoted (2 renders)" if promote else "steady (1 render)"
        print(f"  {what:>34}: {statistics.median(times) * 1000:8.1f} ms  ({raised} weights "
              "raised)")


async def probe(proxies: int) -> float:
    async def readyz(request: web.Request) -> web.Response:
        return web.json_response({"ready": True, "revision": "abc", "lastReload": {"ok": True}})

    app = web.Application()
    app.router.add_get("/readyz", readyz)
    runners = []
    pods = []
    for i in range(proxies):
        runner = web.AppRunner(app if i == 0 else _clone(readyz))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        pods.append({"metadata": {"name": f"pod-{i}", "labels": {sidecars.LABEL: "sidecar"}},
                     "spec": {"containers": [{"name": "vpipe-proxy", "ports": [
                         {"name": "vpipe-admin", "containerPort": port}]}]},
                     "status": {"phase": "Running", "podIP": "127.0.0.1"}})
    observer = Observer(OperatorSettings())
    client = _Pods(pods)
    try:
        await observer.sidecar_report(client, "ns")  # warm the connection pool
        times = []
        for _ in range(5):
            started = time.perf_counter()
            report = await observer.sidecar_report(client, "ns")
            times.append(time.perf_counter() - started)
        assert report.loaded("abc") == proxies
        return statistics.median(times)
    finally:
        await observer.close()
        for runner in runners:
            await runner.cleanup()


def _clone(handler: Any) -> web.Application:
    app = web.Application()
    app.router.add_get("/readyz", handler)
    return app


class _Pods:
    """The one KubeClient call `sidecar_report` makes, answered from memory."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self._pods = pods

    async def list(self, resource: Any, namespace: str, *,
                   label_selector: str | None = None) -> list[dict[str, Any]]:
        return self._pods


def main(argv: list[str]) -> None:
    count = int(argv[0]) if argv else 1000
    proxies = [int(a) for a in argv[1:]] or [10, 100]
    print(f"conditions: {platform.python_implementation()} {platform.python_version()}, one "
          "process, no API server (pods listed from memory)")
    pure(count)
    for m in proxies:
        seconds = asyncio.run(probe(m))
        print(f"sidecar report over {m:>4} proxies (/readyz on 127.0.0.1, concurrency 16): "
              f"{seconds * 1000:7.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
