"""Every query of the chart's Grafana dashboard, run against a real Prometheus scraping a real
proxy that served split canary, shadow and streamed traffic.

Aspects: each query is valid PromQL that Prometheus accepts with the dashboard's variables
filled in as Grafana would; the panels a rollout is watched by show data: requests per version
(both versions), the canary's share between 0 and 1, error rate and latency per version, shadow
copies and matches, one config revision served, the thread pin store.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
import pytest_asyncio

from tests.support.fake_upstream import FakeUpstream
from tests.support.prometheus import Prometheus, Target, running_prometheus
from tests.support.proxy import pipeline, route, running_proxy, running_upstream, write_resources

DASHBOARD = Path(__file__).parents[2] / "charts" / "vpipe" / "files" / "dashboards" / "vpipe.json"
shared_loop = pytest.mark.asyncio(loop_scope="module")


def panels() -> dict[str, list[str]]:
    board = json.loads(DASHBOARD.read_text())
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in board["panels"]
            if p["type"] != "row"}


def as_grafana_sends(expr: str) -> str:
    """The variables filled in as Grafana does: one namespace, "All" routes, a rate window
    of at least four scrape intervals."""
    return (expr.replace("$namespace", "default").replace("$route", ".*")
            .replace("$__rate_interval", "1m"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def prometheus(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Prometheus]:
    directory = tmp_path_factory.mktemp("dashboard")
    async with running_upstream(FakeUpstream()) as upstream:
        write_resources(directory, [
            pipeline("stable", {"family": "mock"}),
            pipeline("canary", {"family": "openai-compatible", "baseUrl": upstream}),
            route("chat", ["gpt-*", "status-*"], "stable",
                  canary={"pipeline": "canary", "weight": 50}),
            route("mirror", ["mirror-*"], "stable",
                  canary={"pipeline": "canary", "weight": 100, "mode": "shadow"}),
        ])
        async with running_proxy(directory) as proxy, running_prometheus(
                [Target(f"127.0.0.1:{proxy.admin_port}", {"namespace": "default"})],
        ) as server:
            async with openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="unused",
                                          max_retries=0) as client:
                # Twice, with a scrape between: a counter's first scrape has no rate yet.
                await traffic(client)
                await server.wait_for('vpipe_shadow_match_total{route="mirror"}')
                await server.wait_for('vpipe_requests_total{status=~"5.."}')
                await traffic(client)
            await server.wait_for('sum(rate(vpipe_shadow_match_total{route="mirror"}[1m])) > 0')
            await server.wait_for('sum(rate(vpipe_requests_total{status=~"5.."}[1m])) > 0')
            yield server


async def traffic(client: openai.AsyncOpenAI) -> None:
    """Split (whole and streamed, many users), mirrored, and one canary error."""
    for n in range(20):
        await client.chat.completions.create(
            model="gpt-4o", user=f"user-{n}", messages=[{"role": "user", "content": "hi"}])
        stream = await client.chat.completions.create(
            model="gpt-4o", user=f"user-{n}", stream=True,
            messages=[{"role": "user", "content": "hi"}])
        async for _ in stream:
            pass
    for _ in range(5):
        await client.chat.completions.create(
            model="mirror-1", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.InternalServerError):  # the fake answers 503
        await client.chat.completions.create(
            model="status-503", extra_headers={"x-vpipe-version": "v2"},
            messages=[{"role": "user", "content": "hi"}])


@shared_loop
async def test_every_query_is_accepted(prometheus: Prometheus) -> None:
    for title, exprs in panels().items():
        for expr in exprs:
            result = await prometheus.query(as_grafana_sends(expr))  # asserts success
            assert isinstance(result, list), title


async def values(prometheus: Prometheus, title: str, index: int = 0) -> list[dict[str, Any]]:
    return await prometheus.query(as_grafana_sends(panels()[title][index]))


def labelled(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(r["metric"].get(label, "") for label in labels): float(r["value"][1])
            for r in result}


@shared_loop
async def test_the_rollout_panels_show_the_traffic(prometheus: Prometheus) -> None:
    per_version = labelled(await values(prometheus, "Requests per second"), "route", "version")
    assert per_version[("chat", "v1")] > 0 and per_version[("chat", "v2")] > 0
    share = labelled(await values(prometheus, "Canary share"), "route")
    assert 0 < share[("chat",)] < 1 and share[("mirror",)] == 0  # shadow: V1 answers all
    errors = labelled(await values(prometheus, "Error rate (5xx)"), "route", "version")
    assert errors[("chat", "v2")] > 0 and errors[("chat", "v1")] == 0
    latency = labelled(await values(prometheus, "Latency p99"), "route", "version")
    assert latency[("chat", "v1")] > 0 and latency[("chat", "v2")] > 0
    assert await values(prometheus, "Time to first streamed chunk p99")


@shared_loop
async def test_the_shadow_and_proxy_panels_show_data(prometheus: Prometheus) -> None:
    copies = labelled(await values(prometheus, "Shadow copies per second"), "route", "result")
    assert copies[("mirror", "sent")] > 0
    matches = labelled(await values(prometheus, "V2 matches V1"), "route", "aspect")
    assert matches[("mirror", "status")] == 1
    assert await values(prometheus, "Text similarity (median, p10)")
    revisions = await values(prometheus, "Proxies by config revision")
    assert [float(r["value"][1]) for r in revisions] == [1]
    assert labelled(await values(prometheus, "Responses thread pins"), "") == {("",): 0}
