"""The rollout's gates, pure: the sidecar gate, analysis checks, autoPromote, and the Events.

Aspects tested: while proxies lag behind the ConfigMap no raise of the weight happens (promote,
resume, autoPromote, a weight-only spec change) and the action stays pending, while abort and
pause go through; analysis counts passes and failures per step, a new step starts over, stale
checks are ignored; failureLimit pauses or aborts; autoPromote takes step 0 once the gate is
open, then the next step after checksPerStep passes, then Promoted; without autoPromote passing
checks never advance; inconclusive checks break a run of passes; check_due follows the interval;
transition Events; the analysis status round trip; `judge` and the query templates; the
proxies' report (targets, admin port, /readyz answers, "loaded by N of M").
"""

from __future__ import annotations

import datetime
import math

import pydantic
import pytest

from vpipe_api.analysis import BUILTIN_METRICS, render_query
from vpipe_api.resources import AnalysisMetric, Canary
from vpipe_operator import analysis, rollout, sidecars
from vpipe_operator.rollout import AnalysisPlan, CheckRun, MetricResult, Spec, State

T0 = "2026-01-01T00:00:00Z"
GATE = "revision abc is loaded by 1 of 2 sidecars"
PLAN = Spec("v2", 0, (10, 50))
AUTO = Spec("v2", 0, (10, 50), AnalysisPlan(60, failure_limit=2, auto_promote=True,
                                            checks_per_step=2))
MANUAL = Spec("v2", 0, (10, 50), AnalysisPlan(60, failure_limit=2))
ABORTING = Spec("v2", 0, (10, 50), AnalysisPlan(60, failure_limit=1, on_failure="abort"))
PASS = MetricResult("success-rate", "0.999", "Passed")
FAIL = MetricResult("success-rate", "0.5 (below min 0.99)", "Failed")
NO_DATA = MetricResult("success-rate", "no data", "Inconclusive")


def step(spec: Spec, state: State | None, action: str | None = None, *, gate: str | None = None,
         check: CheckRun | None = None) -> State:
    return rollout.advance(spec, state, action, now=T0, gate=gate, check=check)


def where(state: State) -> tuple[str, int | None, int]:
    return state.where


def at_step_0(spec: Spec) -> State:
    state = step(spec, step(spec, None), "promote")
    assert where(state) == ("Progressing", 0, 10)
    return state


def test_the_gate_holds_a_promote_and_keeps_it_pending() -> None:
    idle = step(PLAN, None)
    held = step(PLAN, idle, "promote", gate=GATE)
    assert where(held) == ("Idle", None, 0)
    assert held.pending == "promote"
    assert held.message == f"waiting: promote to 10% applies once {GATE}"
    # Gate open: the same (still pending) action applies.
    assert where(step(PLAN, held, "promote")) == ("Progressing", 0, 10)


def test_the_gate_never_holds_lowering_the_weight() -> None:
    state = at_step_0(PLAN)
    aborted = step(PLAN, state, "abort", gate=GATE)
    assert where(aborted) == ("Aborted", 0, 0) and aborted.pending is None
    assert where(step(PLAN, state, "pause", gate=GATE)) == ("Paused", 0, 10)
    # Resume raises again: held.
    assert where(step(PLAN, aborted, "resume", gate=GATE)) == ("Aborted", 0, 0)


def test_the_gate_holds_a_weight_only_canary_at_what_is_in_force() -> None:
    spec = Spec("v2", 30, ())
    new = step(spec, None, gate=GATE)
    assert new.active_weight == 0 and new.message.startswith("waiting: weight 30% applies once")
    running = step(spec, new)
    assert running.active_weight == 30
    raised = step(Spec("v2", 60, ()), running, gate=GATE)
    assert raised.active_weight == 30
    assert step(Spec("v2", 60, ()), raised).active_weight == 60
    assert step(Spec("v2", 5, ()), raised, gate=GATE).active_weight == 5  # lowering is free


def test_auto_promote_takes_step_0_once_the_gate_opens() -> None:
    idle = step(AUTO, None, gate=GATE)
    assert where(idle) == ("Idle", None, 0) and idle.pending is None
    assert "autoPromote to 10% applies once" in idle.message
    started = step(AUTO, idle)
    assert where(started) == ("Progressing", 0, 10)
    assert started.message.startswith("autoPromote: promoted to step 0")
    assert started.checks == rollout.Checks(step=0)


def test_auto_promote_advances_after_checks_per_step_passes_then_promotes() -> None:
    state = step(AUTO, step(AUTO, None))
    state = step(AUTO, state, check=CheckRun(0, (PASS,)))
    assert where(state) == ("Progressing", 0, 10) and state.checks is not None
    assert (state.checks.passes, state.checks.failures) == (1, 0)
    assert "1 of 2 passing checks before autoPromote" in state.message
    state = step(AUTO, state, check=CheckRun(0, (PASS,)))
    assert where(state) == ("Progressing", 1, 50)
    assert state.checks == rollout.Checks(step=1)  # a new step starts over
    state = step(AUTO, step(AUTO, state, check=CheckRun(1, (PASS,))), check=CheckRun(1, (PASS,)))
    assert where(state) == ("Promoted", 1, 100)


def test_passing_checks_never_promote_without_auto_promote() -> None:
    state = at_step_0(MANUAL)
    for _ in range(5):
        state = step(MANUAL, state, check=CheckRun(0, (PASS,)))
    assert where(state) == ("Progressing", 0, 10)
    assert state.checks is not None and state.checks.passes == 5
    assert "promote to continue" in state.message


def test_failures_up_to_the_limit_pause_at_the_step() -> None:
    state = step(MANUAL, at_step_0(MANUAL), check=CheckRun(0, (PASS, FAIL)))
    assert where(state) == ("Progressing", 0, 10)
    assert "1 failed check(s) in a row, limit 2" in state.message
    paused = step(MANUAL, state, check=CheckRun(0, (FAIL,)))
    assert where(paused) == ("Paused", 0, 10)
    assert paused.message.startswith("analysis failed at step 0 (10%): success-rate 0.5 (below "
                                     "min 0.99)")
    assert rollout.transition_event(state, paused, None) == ("Warning", "AnalysisFailed",
                                                             paused.message)
    # No further checks count while paused; resume starts the analysis over.
    assert step(MANUAL, paused, check=CheckRun(0, (FAIL,))).checks == paused.checks
    resumed = step(MANUAL, paused, "resume")
    assert where(resumed) == ("Progressing", 0, 10) and resumed.checks == rollout.Checks(step=0)


def test_a_failure_can_abort_instead() -> None:
    aborted = step(ABORTING, at_step_0(ABORTING), check=CheckRun(0, (FAIL,)))
    assert where(aborted) == ("Aborted", 0, 0)
    assert aborted.message.startswith("aborted: analysis failed at step 0 (10%): success-rate")
    assert rollout.transition_event(at_step_0(ABORTING), aborted, None)[:2] == (  # type: ignore[index]
        "Warning", "RolloutAborted")


def test_an_explicit_action_wins_over_a_check() -> None:
    state = step(ABORTING, at_step_0(ABORTING), "promote", check=CheckRun(0, (FAIL,)))
    assert where(state) == ("Progressing", 1, 50)


def test_inconclusive_breaks_a_run_of_passes_but_not_of_failures() -> None:
    state = step(MANUAL, at_step_0(MANUAL), check=CheckRun(0, (PASS,)))
    state = step(MANUAL, state, check=CheckRun(0, (FAIL,)))
    state = step(MANUAL, state, check=CheckRun(0, (NO_DATA,)))
    assert state.checks is not None and (state.checks.passes, state.checks.failures) == (0, 1)
    assert "inconclusive" in state.message and "no data" in state.message
    assert where(step(MANUAL, state, check=CheckRun(0, (FAIL,)))) == ("Paused", 0, 10)


def test_a_check_about_another_step_is_ignored() -> None:
    state = step(MANUAL, at_step_0(MANUAL), "promote")
    assert step(MANUAL, state, check=CheckRun(0, (FAIL,))).checks == rollout.Checks(step=1)


def test_check_due_follows_the_interval_from_the_step_or_the_last_check() -> None:
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    state = at_step_0(MANUAL)
    assert rollout.check_due(MANUAL, state, start) == 60
    assert rollout.check_due(MANUAL, state, start + datetime.timedelta(seconds=61)) == -1
    checked = rollout.advance(MANUAL, state, None, now="2026-01-01T00:01:00Z",
                              check=CheckRun(0, (PASS,)))
    assert rollout.check_due(MANUAL, checked, start + datetime.timedelta(seconds=90)) == 30
    assert rollout.check_due(PLAN, state, start) is None  # no analysis
    assert rollout.check_due(MANUAL, step(MANUAL, None), start) is None  # not progressing


def test_analysis_state_survives_the_status_round_trip() -> None:
    state = step(MANUAL, at_step_0(MANUAL), check=CheckRun(0, (PASS, NO_DATA)))
    status = state.to_status()
    assert status["rollout"]["analysis"] == {
        "step": 0, "passes": 0, "failures": 0, "lastCheckTime": T0,
        "results": [{"name": "success-rate", "value": "0.999", "verdict": "Passed"},
                    {"name": "success-rate", "value": "no data", "verdict": "Inconclusive"}]}
    assert State.from_status(status) == state


def test_transition_events() -> None:
    idle = step(PLAN, None)
    started = step(PLAN, idle, "promote")
    assert rollout.transition_event(idle, started, "promote")[:2] == (  # type: ignore[index]
        "Normal", "RolloutStep")
    assert rollout.transition_event(None, idle, None) is None
    refused = step(PLAN, idle, "resume")
    assert rollout.transition_event(idle, refused, "resume")[:2] == (  # type: ignore[index]
        "Warning", "RolloutActionRefused")
    held = step(PLAN, idle, "promote", gate=GATE)
    assert rollout.transition_event(idle, held, "promote") is None  # pending, not refused


# -- judge and the queries ----------------------------------------------------------------------

RATE = AnalysisMetric(name="success-rate", min=0.99)
P99 = AnalysisMetric(name="latency-p99", max=2.0)


@pytest.mark.parametrize(("metric", "value", "error", "verdict", "shown"), [
    (RATE, 0.995, None, "Passed", "0.995"),
    (RATE, 0.5, None, "Failed", "0.5 (below min 0.99)"),
    (P99, 3.25, None, "Failed", "3.25 (above max 2)"),
    (P99, None, None, "Inconclusive", "no data"),
    (P99, math.nan, None, "Inconclusive", "no data"),
    (RATE, None, "Prometheus at http://p:9090 is unreachable", "Failed",
     "query failed: Prometheus at http://p:9090 is unreachable"),
])
def test_judge(metric: AnalysisMetric, value: float | None, error: str | None, verdict: str,
               shown: str) -> None:
    assert analysis.judge(metric, value, error) == MetricResult(metric.name, shown,
                                                                verdict)  # type: ignore[arg-type]


def test_built_in_queries_select_the_route_and_the_canary() -> None:
    query = render_query(BUILTIN_METRICS["success-rate"].query, route="chat", namespace="team-a",
                         stable="v1", canary="v2", window="30s")
    assert query == (
        '(sum(rate(vpipe_requests_total{route="chat",namespace="team-a",version="v2",'
        'status!~"5.."}[30s])) or vector(0)) / '
        'sum(rate(vpipe_requests_total{route="chat",namespace="team-a",version="v2"}[30s]))')
    bare = render_query("sum(up{pipeline=\"$canary\"}) / $window", route="r", namespace="n",
                        stable="s", canary="c", window="1m", namespace_label="")
    assert bare == 'sum(up{pipeline="c"}) / 1m'


@pytest.mark.parametrize(("metric", "message"), [
    ({"name": "success-rate"}, "has no threshold: set min, max or both"),
    ({"name": "errors", "max": 1}, "has no query and is not a built-in"),
    ({"name": "x", "query": "sum(x{route=\"$rout\"})", "max": 1},
     "unknown placeholder(s) rout in query"),
    ({"name": "x", "query": "vector($ 1)", "max": 1}, "write $$ for a literal dollar sign"),
    ({"name": "x", "query": "vector(1)", "min": 2, "max": 1}, "min 2.0 is above max 1.0"),
])
def test_bad_metrics_are_refused_with_what_to_do(metric: dict[str, object], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message.replace("(", r"\(")
                       .replace(")", r"\)").replace("$", r"\$")):
        AnalysisMetric.model_validate(metric)


def test_analysis_needs_steps_and_unique_metric_names() -> None:
    metrics = [{"name": "success-rate", "min": 0.9}]
    with pytest.raises(pydantic.ValidationError, match="analysis needs steps"):
        Canary.model_validate({"pipeline": "v2", "weight": 5, "analysis": {"metrics": metrics}})
    with pytest.raises(pydantic.ValidationError, match="repeated: success-rate"):
        Canary.model_validate({"pipeline": "v2", "steps": [5],
                               "analysis": {"metrics": metrics * 2}})
    canary = Canary.model_validate({"pipeline": "v2", "steps": [5], "analysis": {
        "interval": "2m", "metrics": metrics, "autoPromote": True, "onFailure": "abort"}})
    assert Spec.of(canary).analysis == AnalysisPlan(120, 2, "abort", True, 3)


# -- the proxies' report ------------------------------------------------------------------------

def pod(name: str, ip: str | None = "10.0.0.1", phase: str = "Running",
        **spec: object) -> dict[str, object]:
    return {"metadata": {"name": name, "labels": {sidecars.LABEL: "sidecar"}},
            "spec": spec or {"containers": [{"name": "app"}]},
            "status": {"phase": phase, **({"podIP": ip} if ip else {})}}


def test_targets_are_running_proxies_with_an_ip_and_their_admin_port() -> None:
    injected = pod("b", "10.0.0.2", containers=[
        {"name": "app"}, {"name": "vpipe-proxy", "ports": [
            {"name": "vpipe-http", "containerPort": 8080},
            {"name": "vpipe-admin", "containerPort": 19090}]}])
    gateway = pod("a", "fd00::1", containers=[
        {"name": "proxy", "env": [{"name": "VPIPE_ADMIN_PORT", "value": "9191"}]}])
    deleting = pod("c")
    deleting["metadata"]["deletionTimestamp"] = T0  # type: ignore[index]
    unlabelled = pod("f")
    unlabelled["metadata"]["labels"] = {}  # type: ignore[index]
    found = sidecars.targets([injected, gateway, deleting, pod("d", None), pod("e", phase="Pending"),
                              unlabelled])
    assert found == [sidecars.Target("a", "http://[fd00::1]:9191"),
                     sidecars.Target("b", "http://10.0.0.2:19090")]
    assert sidecars.admin_port({"containers": [{"name": "app"}]}) == 9090


@pytest.mark.parametrize(("status", "body", "error", "expected"), [
    (200, {"ready": True, "revision": "abc", "lastReload": {"ok": True}}, None,
     sidecars.Observation("p", "abc")),
    (503, {"ready": False, "revision": None, "lastReload": {"ok": None}}, None,
     sidecars.Observation("p", None, "no config loaded yet")),
    (200, {"revision": "old", "lastReload": {"ok": False, "revision": "new",
                                             "error": "module 'upstream' failed to start"}},
     None, sidecars.Observation("p", "old", "serves revision old; loading new failed: module "
                                "'upstream' failed to start")),
    (None, None, "ClientConnectorError", sidecars.Observation(
        "p", None, "unreachable: ClientConnectorError")),
    (500, "oops", None, sidecars.Observation("p", None, "/readyz answered 500 without a JSON "
                                             "object")),
])
def test_readyz_answers(status: int | None, body: object, error: str | None,
                        expected: sidecars.Observation) -> None:
    assert sidecars.observe("p", status, body, error) == expected


def test_the_report_gates_until_every_proxy_serves_the_revision() -> None:
    report = sidecars.Report((sidecars.Observation("a", "r2"), sidecars.Observation("b", "r1"),
                              sidecars.Observation("c", None, "unreachable: timeout")))
    assert report.gate("r2") == ("revision r2 is loaded by 1 of 3 sidecars (b: serves revision "
                                 "r1; c: unreachable: timeout)")
    assert report.status("r2") == {"revision": "r2", "loaded": 1, "total": 3, "summary": "1/3",
                                   "message": report.describe("r2")}
    assert sidecars.Report((sidecars.Observation("a", "r2"),)).gate("r2") is None
    assert sidecars.Report(()).gate(None) is None  # no proxy runs: nothing to wait for
    assert report.gate(None) == "no config is in the ConfigMap yet"


def test_a_report_that_could_not_list_the_proxies_holds_and_says_what_to_do() -> None:
    report = sidecars.Report((), error="listing pods failed: HTTP 403 Forbidden; grant list/watch "
                             "on pods")
    assert report.gate("r1") == ("the proxies can be asked which config they serve (listing pods "
                                 "failed: HTTP 403 Forbidden; grant list/watch on pods)")
    assert report.status("r1")["summary"] == "?"
    assert report.status("r1")["message"].startswith("unknown: listing pods failed: HTTP 403")
