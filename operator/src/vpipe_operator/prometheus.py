"""A small client for Prometheus' instant-query API (`/api/v1/query`), for canary analysis.

`parse_response` and `parse` are pure (an HTTP status and body in, one number or None out) so
every shape Prometheus can answer with is unit-tested; `PrometheusClient.query` only adds the
HTTP call. Errors are `PrometheusError`s that name the server (never a credential: user info in
the URL is not shown, headers never are) and the query, and say what to do.

One query gives one number: a scalar, or an instant vector of one series. No series is None
("no data": the caller decides, e.g. no traffic yet); NaN (0/0, e.g. a success rate over no
requests) is returned as NaN for the same reason. Several series, a range vector or a string
are errors: the query has to aggregate to one number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote

import aiohttp
import orjson

from vpipe_operator.errors import PrometheusError

MAX_QUOTED: Final = 200  # characters of a query or error body kept in a message
QUERY_PATH: Final = "/api/v1/query"

# Prometheus' errorType values (https://prometheus.io/docs/prometheus/latest/querying/api/)
# turned into what the reader should do.
_ERROR_TYPES: Final[Mapping[str, str]] = {
    "bad_data": "invalid PromQL",
    "execution": "the query failed while Prometheus ran it",
    "timeout": "Prometheus gave up on the query (too expensive? narrow its selectors or range)",
    "canceled": "Prometheus canceled the query",
    "unavailable": "Prometheus is not ready to answer queries",
    "internal": "Prometheus failed internally",
}


def shown_url(url: str) -> str:
    """`url` fit for messages and logs: without user info (`user:password@`), if any."""
    userinfo = _userinfo(url)
    return url.replace(userinfo + "@", "", 1) if userinfo else url


def parse_response(raw: bytes, *, status: int, url: str, promql: str) -> float | None:
    """The value of an instant query from Prometheus' HTTP answer (`status`, body `raw`)."""
    where = _where(url, promql)
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, Mapping) and "status" in body:
        # Prometheus' own envelope: errors (HTTP 400, 422, 503, ...) say why in errorType.
        return parse(body, url=url, promql=promql)
    text = _short(" ".join(raw.decode(errors="replace").split())) or "(empty body)"
    if not 200 <= status < 300:
        hint = {401: "; Prometheus wants credentials the operator does not send",
                403: "; Prometheus refuses the operator's credentials",
                404: "; is the URL Prometheus' base URL (without /api/v1)?"}.get(status, "")
        raise PrometheusError(f"{where}: HTTP {status}: {text}{hint}")
    raise PrometheusError(f"{where}: the answer is not a Prometheus API response "
                          f"(is the URL Prometheus' base URL?): {text}")


def parse(body: Any, *, url: str, promql: str) -> float | None:
    """The single value of an instant query's decoded JSON answer; None when it has no data."""
    where = _where(url, promql)
    if not isinstance(body, Mapping):
        raise PrometheusError(f"{where}: the answer is not a JSON object")
    if body.get("status") != "success":
        error_type = str(body.get("errorType") or "error")
        error = str(body.get("error") or "no detail")
        # A parse error reads `invalid parameter "query": 1:7: parse error: ...`; the first
        # part only repeats what "invalid PromQL" says.
        error = error.removeprefix('invalid parameter "query": ')
        if error_type == "bad_data":
            raise PrometheusError(f"{where}: invalid PromQL (bad_data): {_short(error)}; "
                                  "fix the query")
        meaning = _ERROR_TYPES.get(error_type)
        detail = f"{meaning} ({error_type})" if meaning else error_type
        raise PrometheusError(f"{where}: {detail}: {_short(error)}")
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
    """Instant queries against one Prometheus, over the caller's aiohttp session.

    `timeout` (seconds) bounds each query, connecting included. `headers` go with every
    request: the place for authentication, e.g. `{"Authorization": f"Bearer {token}"}`
    (never shown in errors).
    """

    def __init__(self, session: aiohttp.ClientSession, url: str, *, timeout: float,
                 headers: Mapping[str, str] | None = None) -> None:
        self._session = session
        self.url = url.rstrip("/")
        self.shown_url = shown_url(self.url)
        self.timeout = timeout
        self._headers = dict(headers or {})

    async def query(self, promql: str) -> float | None:
        """The query's value now: a float (NaN possible), or None when there is no data."""
        seconds = self.timeout
        try:
            async with self._session.post(
                    self.url + QUERY_PATH, data={"query": promql}, headers=self._headers,
                    timeout=aiohttp.ClientTimeout(total=seconds)) as response:
                raw = await response.read()
                status = response.status
        except TimeoutError:
            raise PrometheusError(f"Prometheus at {self.shown_url} is unreachable: no answer "
                                  f"within {seconds:g}s to query {_short(promql)}") from None
        except aiohttp.ClientError as e:
            reason = _redact(f"{type(e).__name__} {e}".rstrip(), self.url)
            raise PrometheusError(f"Prometheus at {self.shown_url} is unreachable: "
                                  f"{reason}") from None
        return parse_response(raw, status=status, url=self.shown_url, promql=promql)


def _userinfo(url: str) -> str:
    # By hand, not urlsplit: that raises on some malformed URLs, which still need an error.
    netloc = re.split(r"[/?#]", url.partition("://")[2] or url, maxsplit=1)[0]
    return netloc.rpartition("@")[0]


def _redact(text: str, url: str) -> str:
    """`text` without the user info of `url` (some aiohttp errors quote the URL whole)."""
    userinfo = _userinfo(url)
    secrets = {userinfo, userinfo.partition(":")[2]}
    for secret in sorted({*secrets, *map(unquote, secrets)} - {""}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _where(url: str, promql: str) -> str:
    return f"Prometheus at {shown_url(url)}, query {_short(promql)}"


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
