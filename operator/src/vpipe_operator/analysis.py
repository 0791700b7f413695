"""Canary analysis, the pure part: which checks are due, the PromQL they send, what a value means.

The controller asks `due` which Routes need a check now (a stepped rollout in progress, with
`spec.canary.analysis`, every proxy serving the current revision, the interval elapsed), runs
each `Query` against Prometheus (`observe`), and turns the answers into a `rollout.CheckRun`
with `judge`. No I/O and no clock here.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Mapping

from vpipe_api.analysis import BUILTIN_METRICS, render_query
from vpipe_api.resources import AnalysisMetric, Route
from vpipe_operator import rollout


@dataclasses.dataclass(frozen=True)
class Query:
    """One metric of one due check, ready to send."""

    metric: AnalysisMetric
    promql: str


@dataclasses.dataclass(frozen=True)
class DueCheck:
    """A Route whose analysis must run now, at `step`, against `prometheus`."""

    route: str
    step: int
    prometheus: str  # base URL; empty when neither the Route nor the operator names one
    queries: tuple[Query, ...]


def due(
    route: Route, state: rollout.State | None, now: datetime.datetime, *,
    default_prometheus: str, namespace_label: str,
) -> DueCheck | None:
    """The check `route` needs now, or None (no analysis, not progressing, or not yet due)."""
    canary = route.spec.canary
    if canary is None or canary.analysis is None or state is None:
        return None
    spec = rollout.Spec.of(canary)
    wait = rollout.check_due(spec, state, now)
    if wait is None or wait > 0 or state.current_step is None or state.canary != canary.pipeline:
        return None
    plan = canary.analysis
    queries = tuple(Query(m, promql(route, m, namespace_label=namespace_label))
                    for m in plan.metrics)
    return DueCheck(route.metadata.name, state.current_step,
                    plan.prometheus or default_prometheus, queries)


def promql(route: Route, metric: AnalysisMetric, *, namespace_label: str) -> str:
    """The query `metric` sends for `route` (a built-in's when it has no query of its own)."""
    assert route.spec.canary is not None
    assert route.spec.canary.analysis is not None
    template = metric.query if metric.query is not None else BUILTIN_METRICS[metric.name].query
    return render_query(
        template, route=route.metadata.name, namespace=route.metadata.namespace,
        stable=route.spec.pipeline, canary=route.spec.canary.pipeline,
        window=route.spec.canary.analysis.interval, namespace_label=namespace_label)


def judge(metric: AnalysisMetric, value: float | None, error: str | None = None,
          ) -> rollout.MetricResult:
    """What one answer means: Failed (out of range, or the query failed), Inconclusive (no
    data), or Passed."""
    if error is not None:
        return rollout.MetricResult(metric.name, f"query failed: {error}"[:300], "Failed")
    if value is None or math.isnan(value):
        return rollout.MetricResult(metric.name, "no data", "Inconclusive")
    shown = f"{value:.4g}"
    if metric.min is not None and value < metric.min:
        return rollout.MetricResult(metric.name, f"{shown} (below min {metric.min:g})", "Failed")
    if metric.max is not None and value > metric.max:
        return rollout.MetricResult(metric.name, f"{shown} (above max {metric.max:g})", "Failed")
    return rollout.MetricResult(metric.name, shown, "Passed")


def next_wakeup(specs: Mapping[str, rollout.Spec], states: Mapping[str, rollout.State],
                now: datetime.datetime) -> float | None:
    """Seconds until the earliest check any of these rollouts has coming, or None."""
    waits = [rollout.check_due(specs[name], state, now) for name, state in states.items()
             if name in specs]
    found = [w for w in waits if w is not None]
    return max(0.0, min(found)) if found else None
