"""A small client for Prometheus' instant-query API (`/api/v1/query`), for canary analysis.

`parse` is pure (a response body in, one number or None out) so every shape Prometheus can
answer with is unit-tested; `PrometheusClient.query` only adds the HTTP call. Errors say which
server and what went wrong (never a credential), as `PrometheusError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import aiohttp
import orjson

from vpipe_operator.errors import PrometheusError

MAX_QUOTED: Final = 200  # characters of a query or error body kept in a message


def parse(body: Any, *, url: str, promql: str) -> float | None:
    """The single value of an instant query's answer; None when it has no data."""
    where = f"Prometheus at {url}, query {_short(promql)}"
    if not isinstance(body, Mapping):
        raise PrometheusError(f"{where}: the answer is not a JSON object")
    if body.get("status") != "success":
        kind, error = body.get("errorType") or "error", body.get("error") or "no detail"
        hint = "; fix the PromQL" if kind == "bad_data" else ""
        raise PrometheusError(f"{where}: {kind}: {_short(str(error))}{hint}")
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise PrometheusError(f"{where}: the answer has no data")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _number(result, where)
    if kind != "vector":
        raise PrometheusError(f"{where}: a {kind} result; write a query that returns one "
                              "number (an instant vector of one series, or a scalar)")
    if not isinstance(result, list):
        raise PrometheusError(f"{where}: the vector result is not a list")
    if not result:
        return None
    if len(result) > 1:
        raise PrometheusError(f"{where}: the query returned {len(result)} series; aggregate "
                              "it to one, e.g. sum(...)")
    sample = result[0]
    return _number(sample.get("value") if isinstance(sample, Mapping) else None, where)


class PrometheusClient:
    """Instant queries against one Prometheus, over the caller's aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, url: str, *, timeout: float) -> None:
        self._session = session
        self.url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def query(self, promql: str) -> float | None:
        """The query's value now: a float (NaN possible), or None when there is no data."""
        try:
            async with self._session.post(
                    self.url + "/api/v1/query", data={"query": promql},
                    timeout=self._timeout) as response:
                raw = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as e:
            raise PrometheusError(f"Prometheus at {self.url} is unreachable: "
                                  f"{type(e).__name__} {e}".rstrip()) from None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise PrometheusError(f"Prometheus at {self.url} answered HTTP {status} without "
                                  f"JSON: {_short(raw.decode(errors='replace'))}") from None
        return parse(body, url=self.url, promql=promql)


def _number(sample: Any, where: str) -> float:
    # A sample is [<unix time>, "<value>"]; the value is a string ("NaN" and "+Inf" included).
    if not (isinstance(sample, list) and len(sample) == 2 and isinstance(sample[1], str)):
        raise PrometheusError(f"{where}: a sample is not [time, value]")
    try:
        value = float(sample[1])
    except ValueError:
        raise PrometheusError(f"{where}: the value {sample[1]!r} is not a number") from None
    return value


def _short(text: str) -> str:
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 3] + "..."
