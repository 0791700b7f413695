"""The analysis' Prometheus client: the pure answer parser, and real queries against a real
Prometheus scraping a real proxy.

Aspects: a scalar and a one-series vector give their number; no series is None (no data); NaN
stays NaN; more than one series, a matrix, a string, invalid PromQL, a non-Prometheus answer,
an unreachable or silent server are `PrometheusError`s that name the server (never its
credentials) and the query, and say what to do; requests sent through the proxy with the
`openai` SDK come back from Prometheus counted exactly, per route.

One Prometheus (start-up ~6 s) serves the whole module: its fixture sends the traffic, and the
tests only read.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import openai
import pytest
import pytest_asyncio

from tests.support.fake_upstream import FakeUpstream
from tests.support.prometheus import Prometheus, Target, free_port, running_prometheus
from tests.support.proxy import pipeline, route, running_proxy, running_upstream, write_resources
from vpipe_operator.errors import OperatorError, PrometheusError
from vpipe_operator.prometheus import PrometheusClient, parse, parse_response, shown_url

URL = "http://prometheus.test:9090"
SENT = {"chat": 3, "embed": 2}  # requests sent through the proxy, per route
shared_loop = pytest.mark.asyncio(loop_scope="module")


def vector(*values: str) -> dict[str, object]:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"route": f"r{i}"}, "value": [1700000000.0, v]} for i, v in enumerate(values)]}}


# The pure parser.


@pytest.mark.parametrize(("body", "expected"), [
    (vector("0.995"), 0.995),
    (vector(), None),
    ({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "2"]}}, 2.0),
    (vector("+Inf"), math.inf),
    (vector("-Inf"), -math.inf),
])
def test_parse_values(body: object, expected: float | None) -> None:
    assert parse(body, url=URL, promql="q") == expected


def test_parse_nan_is_nan() -> None:
    value = parse(vector("NaN"), url=URL, promql="q")
    assert value is not None and math.isnan(value)


@pytest.mark.parametrize(("body", "message"), [
    (vector("1", "2", "3"), "the query returned 3 series; aggregate it to one, e.g. sum(...)"),
    ({"status": "success", "data": {"resultType": "matrix", "result": []}},
     "a matrix result; write a query that returns one number (an instant vector of one "
     "series, or a scalar)"),
    ({"status": "success", "data": {"resultType": "string", "result": [1.0, "a"]}},
     "a string result; write a query that returns one number (an instant vector of one "
     "series, or a scalar)"),
    ({"status": "error", "errorType": "bad_data",
      "error": 'invalid parameter "query": 1:7: parse error: unexpected end of input'},
     "invalid PromQL (bad_data): 1:7: parse error: unexpected end of input; fix the query"),
    ({"status": "error", "errorType": "execution", "error": "many-to-many matching"},
     "the query failed while Prometheus ran it (execution): many-to-many matching"),
    ({"status": "error", "errorType": "timeout", "error": "query timed out"},
     "Prometheus gave up on the query (too expensive? narrow its selectors or range) "
     "(timeout): query timed out"),
    ({"status": "error"}, "error: no detail"),
    ({"status": "success"}, "the answer has no data"),
    (["not", "an", "object"], "the answer is not a JSON object"),
    (vector("many"), "the value 'many' is not a number"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
     "a sample is not [time, value]"),
])
def test_parse_errors_name_the_server_the_query_and_what_to_do(body: object,
                                                               message: str) -> None:
    with pytest.raises(PrometheusError) as raised:
        parse(body, url=URL, promql="sum(x)")
    assert str(raised.value) == f"Prometheus at {URL}, query sum(x): {message}"
    assert isinstance(raised.value, OperatorError)


@pytest.mark.parametrize(("status", "raw", "message"), [
    (404, b"404 page not found\n", "HTTP 404: 404 page not found; is the URL Prometheus' base "
                                   "URL (without /api/v1)?"),
    (401, b"", "HTTP 401: (empty body); Prometheus wants credentials the operator does not send"),
    (403, b"denied", "HTTP 403: denied; Prometheus refuses the operator's credentials"),
    (503, b"Service Unavailable", "HTTP 503: Service Unavailable"),
    (502, b'{"detail": "bad gateway"}', 'HTTP 502: {"detail": "bad gateway"}'),
    (200, b"<html>\n<body>Grafana</body>", "the answer is not a Prometheus API response (is the "
                                           "URL Prometheus' base URL?): <html> <body>Grafana</body>"),
    (400, b'{"status":"error","errorType":"bad_data","error":"parse error: x"}',
     "invalid PromQL (bad_data): parse error: x; fix the query"),
])
def test_parse_response_says_what_the_http_answer_means(status: int, raw: bytes,
                                                        message: str) -> None:
    with pytest.raises(PrometheusError) as raised:
        parse_response(raw, status=status, url=URL, promql="up")
    assert str(raised.value) == f"Prometheus at {URL}, query up: {message}"


def test_parse_response_reads_the_value() -> None:
    raw = b'{"status":"success","data":{"resultType":"scalar","result":[1.5,"0.25"]}}'
    assert parse_response(raw, status=200, url=URL, promql="q") == 0.25


def test_credentials_in_the_url_are_never_shown() -> None:
    assert shown_url("https://bob:s3cret@prom.example:9090/sub") == "https://prom.example:9090/sub"
    assert shown_url("http://t0ken@prom:9090") == "http://prom:9090"
    assert shown_url(URL) == URL
    with pytest.raises(PrometheusError) as raised:
        parse(vector("1", "2"), url="http://bob:s3cret@prom:9090", promql="up")
    assert "s3cret" not in str(raised.value) and "bob" not in str(raised.value)
    assert str(raised.value).startswith("Prometheus at http://prom:9090, query up: ")


def test_a_long_query_is_shortened_in_messages() -> None:
    promql = "sum(" + "x" * 500 + ")"
    with pytest.raises(PrometheusError) as raised:
        parse(vector("1", "2"), url=URL, promql=promql)
    assert len(str(raised.value)) < 350 and "xxx..." in str(raised.value)


# A client against servers that are not (or not quite) Prometheus.


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


async def test_unreachable_prometheus_is_named_without_its_credentials(
        session: aiohttp.ClientSession) -> None:
    port = free_port()
    client = PrometheusClient(session, f"http://bob:s3cret@127.0.0.1:{port}/", timeout=2)
    with pytest.raises(PrometheusError) as raised:
        await client.query("vector(1)")
    message = str(raised.value)
    assert message.startswith(f"Prometheus at http://127.0.0.1:{port} is unreachable: "
                              "ClientConnectorError Cannot connect to host"), message
    assert "s3cret" not in message


async def test_a_silent_prometheus_times_out_naming_the_query(
        session: aiohttp.ClientSession) -> None:
    accepted = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(PrometheusError) as raised:
            await PrometheusClient(session, f"http://127.0.0.1:{port}", timeout=0.3).query("up")
    assert accepted.is_set()
    assert str(raised.value) == (f"Prometheus at http://127.0.0.1:{port} is unreachable: "
                                 "no answer within 0.3s to query up")


# Real queries against a real Prometheus scraping a real proxy.


@dataclass(frozen=True)
class Stack:
    prometheus: Prometheus
    proxy_url: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    directory = tmp_path_factory.mktemp("prometheus-client")
    async with running_upstream(FakeUpstream()) as upstream:
        write_resources(directory, [
            pipeline("fake", {"family": "openai-compatible", "baseUrl": upstream}),
            route("chat", ["gpt-*"], "fake"),
            route("embed", ["text-embedding-*"], "fake"),
        ])
        async with running_proxy(directory) as proxy, running_prometheus(
                [Target(f"127.0.0.1:{proxy.admin_port}", {"namespace": "default"})],
        ) as prometheus:
            async with openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="unused",
                                          max_retries=0) as client:
                for _ in range(SENT["chat"]):
                    await client.chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
                for _ in range(SENT["embed"]):
                    await client.embeddings.create(model="text-embedding-3-small", input="hi")
            await prometheus.wait_for(f"sum(vpipe_requests_total) == {sum(SENT.values())}")
            yield Stack(prometheus, proxy.url)


@pytest_asyncio.fixture(loop_scope="module")
async def client(stack: Stack) -> AsyncIterator[PrometheusClient]:
    async with aiohttp.ClientSession() as opened:
        yield PrometheusClient(opened, stack.prometheus.url, timeout=5)


@shared_loop
async def test_requests_through_the_proxy_come_back_counted_per_route(
        client: PrometheusClient) -> None:
    for name, sent in SENT.items():
        promql = f'sum(vpipe_requests_total{{route="{name}", namespace="default"}})'
        assert await client.query(promql) == sent


@shared_loop
async def test_no_series_is_none(client: PrometheusClient) -> None:
    assert await client.query('sum(vpipe_requests_total{route="nope"})') is None
    assert await client.query('vpipe_requests_total{namespace="elsewhere"}') is None


@shared_loop
async def test_scalars_and_one_series_vectors_give_their_number(client: PrometheusClient) -> None:
    assert await client.query("1") == 1.0
    assert await client.query("vector(1)") == 1.0
    assert await client.query("scalar(vector(3))") == 3.0
    assert await client.query('sum(up{job="vpipe"})') == 1.0
    nan = await client.query("vector(0) / 0")  # e.g. a success rate over no requests
    assert nan is not None and math.isnan(nan)


@shared_loop
async def test_invalid_promql_says_so(client: PrometheusClient) -> None:
    with pytest.raises(PrometheusError) as raised:
        await client.query("sum(vpipe_requests_total{")
    assert str(raised.value) == (
        f"Prometheus at {client.url}, query sum(vpipe_requests_total{{: invalid PromQL "
        "(bad_data): 1:26: parse error: unexpected end of input inside braces; fix the query")


@shared_loop
async def test_several_series_must_be_aggregated(client: PrometheusClient) -> None:
    with pytest.raises(PrometheusError, match=r"query sum by \(route\) \(vpipe_requests_total\): "
                                              r"the query returned 2 series; aggregate it to "
                                              r"one, e.g. sum\(\.\.\.\)$"):
        await client.query("sum by (route) (vpipe_requests_total)")


@shared_loop
async def test_ranges_and_strings_are_not_one_number(client: PrometheusClient) -> None:
    with pytest.raises(PrometheusError, match="a matrix result; write a query that returns one"):
        await client.query("vpipe_requests_total[1m]")
    with pytest.raises(PrometheusError, match="a string result; write a query that returns one"):
        await client.query('"ok"')


@shared_loop
async def test_a_url_that_is_not_prometheus(stack: Stack) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(PrometheusError, match=r"query up: HTTP 40\d: .*"):
            await PrometheusClient(session, stack.proxy_url, timeout=5).query("up")
        with pytest.raises(PrometheusError, match=r"HTTP 404: 404 page not found; is the URL "
                                                  r"Prometheus' base URL \(without /api/v1\)\?"):
            await PrometheusClient(session, stack.prometheus.url + "/api/v1",
                                   timeout=5).query("up")
