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

from vpipe_operator import apply, reconcile
from vpipe_operator.kube import KubeClient
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

    async def reconcile(self, namespace: str) -> Outcome:
        started = time.monotonic()
        snapshot = await apply.read_snapshot(self._client, namespace)
        analysis = reconcile.analyze(snapshot)
        secrets = await apply.read_secrets(self._client, namespace, analysis.secret_names,
                                           concurrency=self._settings.write_concurrency)
        now = rfc3339(self._clock())
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
        return Outcome(
            writes=plan.writes, seconds=finished - started,
            recheck_after=self._settings.secret_recheck if plan.recheck else None,
        )
