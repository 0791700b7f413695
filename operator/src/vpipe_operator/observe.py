"""What the operator asks outside the API server: the proxies' `/readyz` and Prometheus.

Both are observations a reconcile feeds into the pure decisions (`sidecars`, `analysis`,
`rollout`). Every call is bounded by a timeout and a concurrency limit, and a failure is an
observation ("unreachable", "query failed"), never an exception that stops the reconcile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from vpipe_operator import analysis, errors, kube, rollout, sidecars
from vpipe_operator.kube import KubeClient
from vpipe_operator.prometheus import PrometheusClient
from vpipe_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)


class Observer:
    """One HTTP session for the proxies' admin ports and Prometheus."""

    def __init__(self, settings: OperatorSettings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def sidecar_report(self, client: KubeClient, namespace: str) -> sidecars.Report:
        """Every running proxy of `namespace` and the revision it serves."""
        try:
            pods = await client.list(kube.PODS, namespace,
                                     label_selector=sidecars.LABEL_SELECTOR)
        except errors.PermanentApiError as e:
            # Usually RBAC (a ClusterRole older than the operator): hold the canaries and say
            # so, rather than failing the whole namespace's reconcile.
            logger.warning("Namespace %s: cannot list the proxies' pods: %s", namespace, e)
            return sidecars.Report((), error=f"listing pods failed: HTTP {e.status} {e.reason}; "
                                   "grant list/watch on pods (operator/rbac/clusterrole.yaml) "
                                   "or set VPIPE_OPERATOR_SIDECAR_GATE=false")
        found = sidecars.targets(pods)
        limit = asyncio.Semaphore(self._settings.write_concurrency)
        observations = await asyncio.gather(*(self._readyz(t, limit) for t in found))
        return sidecars.Report(tuple(observations))

    async def checks(self, due: Sequence[analysis.DueCheck]) -> dict[str, rollout.CheckRun]:
        """Run every due check; each metric's answer judged (errors are Failed results)."""
        runs = await asyncio.gather(*(self._check(check) for check in due))
        return {check.route: run for check, run in zip(due, runs, strict=True)}

    async def _readyz(self, target: sidecars.Target,
                      limit: asyncio.Semaphore) -> sidecars.Observation:
        async with limit:
            try:
                async with self._ensure_session().get(
                        target.url + "/readyz",
                        timeout=aiohttp.ClientTimeout(total=self._settings.sidecar_timeout),
                ) as response:
                    raw = await response.read()
                    status = response.status
            except (TimeoutError, aiohttp.ClientError) as e:
                return sidecars.observe(target.pod, None, None,
                                        f"{target.url}/readyz: {type(e).__name__} {e}".strip())
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        return sidecars.observe(target.pod, status, body)

    async def _check(self, check: analysis.DueCheck) -> rollout.CheckRun:
        if not check.prometheus:
            reason = ("no Prometheus: set spec.canary.analysis.prometheus or the operator's "
                      "VPIPE_OPERATOR_PROMETHEUS_URL")
            return rollout.CheckRun(check.step, tuple(
                analysis.judge(q.metric, None, reason) for q in check.queries))
        client = PrometheusClient(self._ensure_session(), check.prometheus,
                                  timeout=self._settings.analysis_timeout)
        results = []
        for query in check.queries:
            try:
                value = await client.query(query.promql)
            except errors.PrometheusError as e:
                logger.warning("Route %s: analysis query %s failed: %s", check.route,
                               query.metric.name, e)
                results.append(analysis.judge(query.metric, None, str(e)))
                continue
            results.append(analysis.judge(query.metric, value))
        return rollout.CheckRun(check.step, tuple(results))

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": kube.USER_AGENT},
                timeout=aiohttp.ClientTimeout(total=self._settings.analysis_timeout))
        return self._session
