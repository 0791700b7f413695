"""The analysis' Prometheus client: the pure answer parser, and real queries against a real
Prometheus scraping a real proxy.

Aspects: a scalar and a one-series vector give their number; no series is None (no data); NaN
stays NaN; more than one series, a matrix, a PromQL error, an unreachable server and a non-JSON
answer are `PrometheusError`s that name the server and say what to do; a count of requests sent
through the proxy with the `openai` SDK comes back from Prometheus exactly.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import pytest

from tests.support.prometheus import Target, running_prometheus
from tests.support.proxy import pipeline, route, running_proxy, unused_port, write_resources
from vpipe_operator.errors import PrometheusError
from vpipe_operator.prometheus import PrometheusClient, parse

URL = "http://prometheus.test:9090"


def vector(*values: str) -> dict[str, object]:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"route": f"r{i}"}, "value": [1700000000.0, v]} for i, v in enumerate(values)]}}


@pytest.mark.parametrize(("body", "expected"), [
    (vector("0.995"), 0.995),
    (vector(), None),
    ({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "2"]}}, 2.0),
    (vector("+Inf"), math.inf),
])
def test_parse_values(body: object, expected: float | None) -> None:
    assert parse(body, url=URL, promql="q") == expected


def test_parse_nan_is_nan() -> None:
    value = parse(vector("NaN"), url=URL, promql="q")
    assert value is not None and math.isnan(value)


@pytest.mark.parametrize(("body", "message"), [
    (vector("1", "2"), "query returned 2 series; aggregate it to one, e.g. sum(...)"),
    ({"status": "success", "data": {"resultType": "matrix", "result": []}},
     "a matrix result; write a query that returns one number"),
    ({"status": "error", "errorType": "bad_data", "error": "parse error: unexpected }"},
     "bad_data: parse error: unexpected }; fix the PromQL"),
    (["not", "an", "object"], "the answer is not a JSON object"),
    (vector("many"), "the value 'many' is not a number"),
])
def test_parse_errors_name_the_server_and_what_to_do(body: object, message: str) -> None:
    with pytest.raises(PrometheusError) as raised:
        parse(body, url=URL, promql="sum(x)")
    assert str(raised.value).startswith(f"Prometheus at {URL}, query sum(x): ")
    assert message in str(raised.value)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


async def test_unreachable_prometheus(session: aiohttp.ClientSession) -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    with pytest.raises(PrometheusError, match=f"Prometheus at {url} is unreachable: "):
        await PrometheusClient(session, url, timeout=2).query("vector(1)")


async def test_real_queries_against_a_real_prometheus(
        session: aiohttp.ClientSession, tmp_path: Path) -> None:
    directory = tmp_path
    write_resources(directory, [pipeline("p", {"family": "mock"}), route("chat", ["gpt-*"], "p")])
    async with running_proxy(directory) as proxy, running_prometheus(
            [Target(f"127.0.0.1:{proxy.admin_port}", {"namespace": "team"})]) as prometheus:
        client = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0)
        for _ in range(7):
            await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        await client.close()
        await prometheus.wait_for('sum(vpipe_requests_total{route="chat"}) == 7')
        queries = PrometheusClient(session, prometheus.url, timeout=5)
        assert await queries.query('sum(vpipe_requests_total{route="chat",namespace="team"})') == 7
        assert await queries.query('sum(vpipe_requests_total{route="nope"})') is None
        assert await queries.query("scalar(vector(3))") == 3
        with pytest.raises(PrometheusError, match=r"bad_data.*fix the PromQL"):
            await queries.query("sum(vpipe_requests_total{")
        with pytest.raises(PrometheusError, match="series; aggregate it to one"):
            await queries.query("label_replace(vector(1), 'a', 'x', '', '') or "
                                "label_replace(vector(2), 'a', 'y', '', '')")

