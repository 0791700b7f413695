"""One namespace reconcile, end to end: list -> render -> compare -> apply.

The steps are deliberately flat so the cost is visible: three reads (Pipelines, Routes, the
ConfigMap), one GET per referenced Secret, pure work (`reconcile`), then only the writes the plan
needs. Nothing is cached between reconciles: the API server is the state, so a restarted operator
(or a newly active replica) decides exactly what the previous one would have.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import socket
import time
from collections.abc import Callable

from vpipe_operator import analysis as canary_analysis
from vpipe_operator import apply, reconcile
from vpipe_operator.kube import KubeClient
from vpipe_operator.observe import Observer
from vpipe_operator.reconcile import Plan, Snapshot
from vpipe_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the scheduler needs to know about a finished reconcile."""

    writes: int
    seconds: float
    recheck_after: float | None  # reconcile again after this long even if nothing changes


class Controller:
    """Reconciles namespaces against the API server through one `KubeClient`."""

    def __init__(
        self, client: KubeClient, settings: OperatorSettings, *,
        clock: Callable[[], datetime.datetime] = utc_now, instance: str | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._clock = clock
        self._instance = instance or socket.gethostname()
        self._observer = Observer(settings)

    async def close(self) -> None:
        await self._observer.close()

    async def reconcile(self, namespace: str) -> Outcome:
        started = time.monotonic()
        s = self._settings
        snapshot = await apply.read_snapshot(self._client, namespace)
        if s.sidecar_gate and snapshot.has_canaries:
            snapshot = dataclasses.replace(
                snapshot, sidecars=await self._observer.sidecar_report(self._client, namespace))
        analysis = reconcile.analyze(snapshot)
        moment = self._clock()
        due = reconcile.due_checks(analysis, moment, default_prometheus=s.prometheus_url,
                                   namespace_label=s.analysis_namespace_label)
        if due:
            # The checks can change weights (pause, abort, autoPromote): analyze again with them.
            snapshot = dataclasses.replace(snapshot, checks=await self._observer.checks(due))
            analysis = reconcile.analyze(snapshot)
        secrets = await apply.read_secrets(self._client, namespace, analysis.secret_names,
                                           concurrency=self._settings.write_concurrency)
        now = rfc3339(moment)
        plan = reconcile.decide(analysis, secrets, now=now,
                                max_events=self._settings.max_events)
        decided = time.monotonic()
        for event in plan.events:
            logger.warning("%s/%s/%s: %s: %s", event.kind, namespace, event.name, event.reason,
                           event.message)
        await apply.execute(self._client, plan, now=now, instance=self._instance,
                            concurrency=self._settings.write_concurrency)
        finished = time.monotonic()
        level = logging.INFO if plan.writes else logging.DEBUG
        logger.log(level, "Namespace %s reconciled in %.3fs (decide %.3fs): %s; %d writes",
                   namespace, finished - started, decided - started, plan.summary, plan.writes)
        return Outcome(writes=plan.writes, seconds=finished - started,
                       recheck_after=self._recheck_after(snapshot, plan, moment))

    def _recheck_after(self, snapshot: Snapshot, plan: Plan,
                       moment: datetime.datetime) -> float | None:
        """When to look again without a watch event: a missing Secret, proxies that lag
        behind a canary's config (they report on their admin port, not through the API), or
        the next analysis check."""
        waits = []
        if plan.recheck:
            waits.append(self._settings.secret_recheck)
        report = snapshot.sidecars
        if plan.rollouts and report is not None and (
                report.error or report.loaded(plan.revision) < report.total):
            waits.append(self._settings.rollout_poll)
        if plan.rollouts:
            check = canary_analysis.next_wakeup(
                {name: spec for name, (spec, _) in plan.rollouts.items()},
                {name: state for name, (_, state) in plan.rollouts.items()}, moment)
            if check is not None:
                # A beat late rather than early: a check due in 0.01 s would find nothing new.
                waits.append(check + 0.05)
        return min(waits) if waits else None
