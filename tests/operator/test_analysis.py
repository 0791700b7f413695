"""Canary analysis end to end, against a real Prometheus scraping a real proxy.

The whole loop runs for real: the operator (against kmock) writes the ConfigMap, a proxy reads it
through the API and serves traffic from the official `openai` SDK, Prometheus (Debian's binary,
started here on 127.0.0.1) scrapes the proxy's /metrics, the operator queries Prometheus and
moves the rollout. Aspects: a canary whose upstream fails is aborted by the built-in
success-rate check (status shows the value and the verdict, an Event says why, the proxy's
weight goes back to 0); a healthy canary is promoted step by step with autoPromote and ends
Promoted, with no request or stream failed on the way (configs reloaded at every step); without
autoPromote passing checks never advance.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import openai

from tests.operator.harness import FAST, Cluster, OperatorThread, eventually, pipeline, route
from tests.operator.test_sidecar_gate import NS, proxy_pod, running_proxies
from tests.support.fake_upstream import FakeUpstream
from tests.support.prometheus import Prometheus, Target, running_prometheus
from tests.support.proxy import running_upstream
from vpipe_proxy.server import ProxyServer


def analysed(*, steps: list[int], auto: bool, on_failure: str = "abort") -> dict[str, Any]:
    obj = route("glm", NS, "glm-v1", ["glm-*"])
    obj["spec"]["canary"] = {"pipeline": "glm-v2", "steps": steps, "analysis": {
        "interval": "3s", "failureLimit": 1, "onFailure": on_failure, "autoPromote": auto,
        "checksPerStep": 1, "metrics": [{"name": "success-rate", "min": 0.9}]}}
    return obj


def rollout_of(cluster: Cluster) -> dict[str, Any]:
    return dict(((cluster.get("Route", NS, "glm") or {}).get("status") or {}).get("rollout")
                or {})


@asynccontextmanager
async def traffic(proxy: ProxyServer) -> AsyncIterator[list[int]]:
    """Requests through the proxy until the block ends, each from another user (so a split
    sends some to the canary); yields the running count of answers by status."""
    counts = [0, 0]  # ok, failed
    client = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0)

    async def send() -> None:
        for i in range(1_000_000):
            try:
                if i % 2:  # streams too: none may break while weights and configs change
                    stream = await client.chat.completions.create(
                        model="glm-4", user=f"user-{i}", stream=True,
                        messages=[{"role": "user", "content": "hello there"}])
                    finishes = [c.choices[0].finish_reason async for c in stream if c.choices]
                    if finishes[-1:] != ["stop"]:
                        raise AssertionError(f"stream {i} ended without a finish: {finishes}")
                else:
                    await client.chat.completions.create(
                        model="glm-4", user=f"user-{i}",
                        messages=[{"role": "user", "content": "hello"}])
                counts[0] += 1
            except openai.APIStatusError:
                counts[1] += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(send())
    try:
        yield counts
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()


@asynccontextmanager
async def stack(cluster: Cluster, operator_factory: Callable[..., OperatorThread],
                ) -> AsyncIterator[tuple[ProxyServer, Prometheus]]:
    async with running_proxies(cluster, 1) as [proxy], running_prometheus(
            [Target(f"127.0.0.1:{proxy.admin_port}", {"namespace": NS})]) as prometheus:
        await cluster.create(proxy_pod("app-0", proxy.admin_port))
        running = operator_factory(dataclasses.replace(FAST, prometheus_url=prometheus.url))
        running.start()
        try:
            await eventually(lambda: proxy.reloader.current, what="the proxy's first config")
            yield proxy, prometheus
        finally:
            await running.stop()


def canary_weight(proxy: ProxyServer) -> int | None:
    runtime = proxy.reloader.current
    if runtime is None or runtime.document.routes[0].canary is None:
        return None
    return runtime.document.routes[0].canary.weight


async def test_a_failing_canary_is_aborted_by_the_success_rate_check(
        cluster: Cluster, operator_factory: Callable[..., OperatorThread]) -> None:
    async with running_upstream(FakeUpstream()) as upstream:
        # The canary's upstream answers every request with a 500.
        broken = pipeline("glm-v2", NS, family="vllm", baseUrl=upstream,
                          modelMap={"glm-4": "status-500"})
        await cluster.create_all([pipeline("glm-v1", NS), broken,
                                  analysed(steps=[50], auto=True)])
        aborted, counts = await _abort_run(cluster, operator_factory)
    assert counts[1] > 0  # the canary did fail requests before the abort
    assert aborted["message"].startswith("aborted: analysis failed at step 0 (50%): "
                                         "success-rate 0 (below min 0.9)")
    assert aborted["analysis"]["results"] == [
        {"name": "success-rate", "value": "0 (below min 0.9)", "verdict": "Failed"}]
    reasons = [(e["type"], e["reason"]) for e in cluster.events(NS, "glm")
               if e["reason"].startswith("Rollout")]
    assert reasons == [("Normal", "RolloutStep"), ("Warning", "RolloutAborted")]


async def _abort_run(cluster: Cluster, operator_factory: Callable[..., OperatorThread],
                     ) -> tuple[dict[str, Any], list[int]]:
    async with stack(cluster, operator_factory) as (proxy, _), traffic(proxy) as counts:
        # autoPromote takes step 0 once the proxy serves the canary; the check then fails.
        await eventually(lambda: canary_weight(proxy) == 50 or None,
                         what="the proxy splitting 50% to the canary", timeout=20)
        aborted = await eventually(lambda: (r := rollout_of(cluster)).get("phase") == "Aborted"
                                   and r, what="the rollout aborted by analysis", timeout=30)
        await eventually(lambda: canary_weight(proxy) == 0 or None,
                         what="the proxy back on the stable pipeline", timeout=20)
        return aborted, list(counts)


async def test_a_healthy_canary_is_promoted_step_by_step(
        cluster: Cluster, operator_factory: Callable[..., OperatorThread]) -> None:
    await cluster.create_all([pipeline("glm-v1", NS), pipeline("glm-v2", NS),
                              analysed(steps=[20, 60], auto=True)])
    async with stack(cluster, operator_factory) as (proxy, prometheus), traffic(proxy) as counts:
        promoted = await eventually(lambda: (r := rollout_of(cluster)).get("phase") == "Promoted"
                                    and r, what="the rollout promoted by analysis", timeout=45)
        await eventually(lambda: canary_weight(proxy) == 100 or None,
                         what="every request on the canary", timeout=20)
        served = await prometheus.wait_for('sum(vpipe_requests_total{version="v2"})')
        assert float(served[0]["value"][1]) > 0
        assert counts[1] == 0
    assert promoted["analysis"]["results"] == [
        {"name": "success-rate", "value": "1", "verdict": "Passed"}]
    reasons = [e["reason"] for e in sorted(cluster.events(NS, "glm"),
                                           key=lambda e: e["metadata"]["name"])
               if e["reason"].startswith("Rollout")]
    assert sorted(reasons) == ["RolloutPromoted", "RolloutStep", "RolloutStep"]


async def test_passing_checks_do_not_promote_without_auto_promote(
        cluster: Cluster, operator_factory: Callable[..., OperatorThread]) -> None:
    await cluster.create_all([pipeline("glm-v1", NS), pipeline("glm-v2", NS),
                              analysed(steps=[30, 60], auto=False)])
    async with stack(cluster, operator_factory) as (proxy, _), traffic(proxy):
        await cluster.patch("Route", NS, "glm",
                            {"metadata": {"annotations": {"vpipe.io/rollout": "promote"}}})
        await eventually(lambda: (rollout_of(cluster).get("analysis") or {}).get("passes", 0) >= 2
                         or None, what="two passing checks", timeout=30)
        state = rollout_of(cluster)
        assert (state["phase"], state["currentStep"]) == ("Progressing", 0)
        assert "promote to continue" in state["message"]
        assert canary_weight(proxy) == 30
