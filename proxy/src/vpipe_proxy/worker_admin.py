"""The one admin port of a multi-worker proxy: every worker's answers, merged. Pure merges.

Each worker keeps its own admin app on a private loopback port; the supervisor asks all of
them and answers for the process group:

- `/readyz`: 200 only when every worker is up and serves a config; `revision` only when all
  serve the same one (else null, with `converged: false` and a `lastReload` error naming the
  workers), so the operator's rollout gate waits for the slowest worker.
- `/metrics`: every worker's series with a `worker` label, plus the supervisor's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

WORKER_HEADER = "x-vpipe-worker"  # which worker answered a forwarded /debug view


@dataclass(frozen=True)
class WorkerView:
    """What the supervisor knows of one worker, and what the worker's /readyz said."""

    worker: int
    pid: int | None
    state: str  # starting | running | restarting | stopping | stopped
    restarts: int
    last_exit: str | None
    readyz: Mapping[str, Any] | None = None  # None: not asked (not running) or no answer
    problem: str | None = None  # why readyz is missing

    @property
    def revision(self) -> str | None:
        value = (self.readyz or {}).get("revision")
        return value if isinstance(value, str) and value else None

    @property
    def ready(self) -> bool:
        return self.state == "running" and bool((self.readyz or {}).get("ready"))

    def as_dict(self) -> dict[str, Any]:
        body = self.readyz or {}
        return {"worker": self.worker, "pid": self.pid, "state": self.state, "ready": self.ready,
                "revision": self.revision, "lastReload": body.get("lastReload"),
                "restarts": self.restarts, "lastExit": self.last_exit, "problem": self.problem}


def converged(views: Sequence[WorkerView]) -> bool:
    """Every running worker serves the same revision (none serving one counts as a revision)."""
    return len({v.revision for v in views if v.state == "running"}) <= 1


def merge_readyz(views: Sequence[WorkerView], source: str, *, resyncs: int,
                 stopping: bool) -> tuple[int, dict[str, Any]]:
    """Status and body of the supervisor's /readyz."""
    same = converged(views)
    revisions = {v.revision for v in views if v.state == "running"}
    revision = next(iter(revisions)) if same and revisions else None
    problems = [f"worker {v.worker}: {v.problem or v.state}" for v in views if not v.ready]
    if stopping:
        problems.insert(0, "shutting down")
    failed = [v for v in views if not ((v.readyz or {}).get("lastReload") or {}).get("ok", True)]
    last_reload: dict[str, Any]
    if not same:
        served = ", ".join(f"{v.worker}: {v.revision or 'none'}" for v in views
                           if v.state == "running")
        reasons = "".join(f"; worker {v.worker}: {v.readyz['lastReload'].get('error')}"
                          for v in failed if v.readyz)
        last_reload = {"ok": False, "revision": None,
                       "error": f"workers serve different revisions ({served}){reasons}"}
    elif failed and failed[0].readyz:
        last_reload = {**failed[0].readyz["lastReload"], "worker": failed[0].worker}
    else:
        first = next((v.readyz for v in views if v.readyz), None) or {}
        last_reload = dict(first.get("lastReload") or {})
    ready = not stopping and all(v.ready for v in views)
    body = {
        "ready": ready, "revision": revision, "lastReload": last_reload, "source": source,
        "converged": same, "workers": [v.as_dict() for v in views],
        "restarts": sum(v.restarts for v in views), "resyncs": resyncs,
        "problems": problems,
    }
    return (200 if ready else 503), body


def label_families(expositions: Mapping[int, str]) -> list[Metric]:
    """Each worker's families, every sample labelled worker="N", same-named families joined."""
    merged: dict[str, Metric] = {}
    for worker, text in sorted(expositions.items()):
        for family in text_string_to_metric_families(text):
            target = merged.get(family.name)
            if target is None:
                target = merged[family.name] = Metric(family.name, family.documentation,
                                                      family.type, family.unit)
            target.samples.extend(
                Sample(s.name, {**s.labels, "worker": str(worker)}, s.value, s.timestamp,
                       s.exemplar)
                for s in family.samples)
    return list(merged.values())


def supervisor_families(views: Sequence[WorkerView], resyncs: int) -> list[Metric]:
    restarts = CounterMetricFamily(
        "vpipe_worker_restarts", "Worker processes restarted after they exited unexpectedly "
        "(crash, kill, out of memory), by worker.", labels=["worker"])
    up = GaugeMetricFamily("vpipe_worker_up", "1 while the worker process runs and answers "
                           "its supervisor, else 0.", labels=["worker"])
    for v in views:
        restarts.add_metric([str(v.worker)], v.restarts)
        up.add_metric([str(v.worker)], 1.0 if v.state == "running" and v.readyz else 0.0)
    resync = CounterMetricFamily(
        "vpipe_worker_resyncs", "Times the supervisor told every worker to re-read the config "
        "source because they served different revisions.", value=resyncs)
    return [restarts, up, resync]


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def exposition(families: Iterable[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


class Supervised(Protocol):
    """What the admin app needs from the supervisor."""

    source_description: str
    resyncs: int
    stopping: bool
    count: int

    async def views(self) -> list[WorkerView]:
        """Every worker's state, with its /readyz answer where it runs."""
        ...

    async def metrics_texts(self) -> dict[int, str]:
        """Every running worker's /metrics text."""
        ...

    async def forward(self, worker: int, path_qs: str) -> tuple[int, bytes, str]:
        """GET `path_qs` on one worker's admin app: status, body, content type."""
        ...


SUPERVISOR = web.AppKey("vpipe_supervisor", Supervised)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "workers": request.app[SUPERVISOR].count})


async def readyz(request: web.Request) -> web.Response:
    supervisor = request.app[SUPERVISOR]
    status, body = merge_readyz(await supervisor.views(), supervisor.source_description,
                                resyncs=supervisor.resyncs, stopping=supervisor.stopping)
    return web.Response(status=status, body=orjson.dumps(body, option=orjson.OPT_INDENT_2),
                        content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    supervisor = request.app[SUPERVISOR]
    texts, views = await supervisor.metrics_texts(), await supervisor.views()
    data = exposition([*label_families(texts), *supervisor_families(views, supervisor.resyncs)])
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def debug(request: web.Request) -> web.Response:
    """/debug/* of one worker: ?worker=N (default 0); the others load the same config."""
    supervisor = request.app[SUPERVISOR]
    raw = request.query.get("worker", "0")
    if not raw.isdigit() or int(raw) >= supervisor.count:
        return web.json_response({"error": f"worker={raw!r}: pass a worker number from 0 to "
                                  f"{supervisor.count - 1}"}, status=400)
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in request.query.items() if k != "worker")
    status, body, content_type = await supervisor.forward(
        int(raw), request.path + (f"?{query}" if query else ""))
    return web.Response(status=status, body=body, headers={
        "Content-Type": content_type, WORKER_HEADER: raw})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/debug/{view}", debug)
