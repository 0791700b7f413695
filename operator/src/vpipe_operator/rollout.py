"""Stepped canary rollouts as a pure state machine: (canary spec, state, action) -> new state.

A Route's `spec.canary.steps` is a plan; every advance is an explicit action that a user asks
for with the annotation `vpipe.io/rollout` (promote, abort, resume, pause), never a timer or a
metric. The state lives in the Route's status (`activeWeight`, `rollout`), so the operator
keeps nothing in memory: each reconcile reads the previous state, applies at most one action,
and writes the result. No I/O and no clock here (the caller passes `now`).

Rules (docs/rollout.md explains them to users):
- Without steps (GitOps style) the active weight is `spec.canary.weight`, as before; only
  abort (weight 0 until resume) overrides it.
- With steps the canary starts at 0 (Idle); promote goes to step 0, then one step at a time;
  promote at the last step is `Promoted` (weight 100): the operator never edits spec, so the
  message tells the user to make the canary `spec.pipeline` in Git and drop `spec.canary`.
- A changed steps plan never raises the weight: the rollout holds (Paused) at the highest new
  step not above the weight in force, or at 0.
- A different canary Pipeline starts a new rollout.
- `blocked` (the config cannot be served, e.g. the canary Pipeline is not Validated) refuses
  every action and keeps what the proxies apply: the previous weight, or 0 for a new canary.
- `gate` (some proxies have not loaded the revision in the ConfigMap yet) holds every raise of
  the weight, whatever asks for it; the action stays pending (its annotation is not consumed)
  and applies once the gate opens. Lowering the weight (abort, pause) is never held.
- Analysis (`spec.canary.analysis`): the caller runs a check when `check_due` says so and
  passes it in. Failed checks in a row up to `failureLimit` pause or abort; passing checks in a
  row up to `checksPerStep` promote only with `autoPromote`, which also takes step 0 once the
  gate opens. An explicit action in the same reconcile wins over what a check would do.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any, Final, Literal, get_args

from vpipe_api.resources import Canary

ANNOTATION: Final = "vpipe.io/rollout"
REASON_ANNOTATION: Final = "vpipe.io/rollout-reason"
Action = Literal["promote", "abort", "resume", "pause"]
ACTIONS: Final[tuple[str, ...]] = get_args(Action)
Phase = Literal["Idle", "Progressing", "Paused", "Promoted", "Aborted"]
PHASES: Final[tuple[str, ...]] = get_args(Phase)
Verdict = Literal["Passed", "Failed", "Inconclusive"]
VERDICTS: Final[tuple[str, ...]] = get_args(Verdict)


@dataclasses.dataclass(frozen=True)
class AnalysisPlan:
    """The parts of `spec.canary.analysis` the state machine needs (the queries are not)."""

    interval: int  # seconds
    failure_limit: int = 2
    on_failure: Literal["pause", "abort"] = "pause"
    auto_promote: bool = False
    checks_per_step: int = 3


@dataclasses.dataclass(frozen=True)
class Spec:
    """What the Route's spec asks for: the canary Pipeline and its weight or steps plan."""

    canary: str
    weight: int
    steps: tuple[int, ...]
    analysis: AnalysisPlan | None = None

    @classmethod
    def of(cls, canary: Canary) -> Spec:
        plan = canary.analysis
        analysis = None if plan is None else AnalysisPlan(
            plan.interval_seconds, plan.failure_limit, plan.on_failure, plan.auto_promote,
            plan.checks_per_step)
        return cls(canary.pipeline, canary.weight, tuple(canary.steps or ()), analysis)


@dataclasses.dataclass(frozen=True)
class MetricResult:
    """One metric of one check: what Prometheus said and what it means."""

    name: str
    value: str
    verdict: Verdict

    def to_status(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "verdict": self.verdict}


@dataclasses.dataclass(frozen=True)
class CheckRun:
    """One analysis check the caller ran at `step`: every metric's result."""

    step: int
    results: tuple[MetricResult, ...]

    @property
    def verdict(self) -> Verdict:
        verdicts = {r.verdict for r in self.results}
        if "Failed" in verdicts:
            return "Failed"
        return "Inconclusive" if "Inconclusive" in verdicts or not verdicts else "Passed"

    def describe(self) -> str:
        wanted = "Passed" if self.verdict == "Passed" else self.verdict
        return ", ".join(f"{r.name} {r.value}" for r in self.results if r.verdict == wanted)


@dataclasses.dataclass(frozen=True)
class Checks:
    """The analysis record at one step: verdicts in a row, and the last check."""

    step: int
    passes: int = 0
    failures: int = 0
    last_check: str | None = None
    results: tuple[MetricResult, ...] = ()

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {"step": self.step, "passes": self.passes,
                                  "failures": self.failures,
                                  "results": [r.to_status() for r in self.results]}
        if self.last_check is not None:
            status["lastCheckTime"] = self.last_check
        return status

    @classmethod
    def from_status(cls, value: Any) -> Checks | None:
        if not isinstance(value, Mapping):
            return None
        step, passes, failures = value.get("step"), value.get("passes"), value.get("failures")
        if not (isinstance(step, int) and isinstance(passes, int) and isinstance(failures, int)):
            return None
        results = []
        for item in value.get("results") or []:
            if (isinstance(item, Mapping) and isinstance(item.get("name"), str)
                    and item.get("verdict") in VERDICTS):
                results.append(MetricResult(item["name"], str(item.get("value", "")),
                                            item["verdict"]))
        last = value.get("lastCheckTime")
        return cls(step, passes, failures, last if isinstance(last, str) else None,
                   tuple(results))


@dataclasses.dataclass(frozen=True)
class State:
    """A rollout's position, as the Route's status records it."""

    canary: str
    steps: tuple[int, ...]
    current_step: int | None
    active_weight: int
    phase: Phase
    message: str
    last_transition_time: str | None = None
    checks: Checks | None = None
    pending: str | None = None  # an action held by the gate: its annotation is kept (not status)

    def to_status(self) -> dict[str, Any]:
        """The `activeWeight` and `rollout` members of the Route's status (camelCase)."""
        rollout: dict[str, Any] = {
            "phase": self.phase, "canary": self.canary, "steps": list(self.steps),
            "currentStep": self.current_step, "lastTransitionTime": self.last_transition_time,
            "message": self.message,
            "analysis": self.checks.to_status() if self.checks is not None else None,
        }
        return {"activeWeight": self.active_weight,
                "rollout": {k: v for k, v in rollout.items() if v is not None}}

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> State | None:
        """The state a previous reconcile wrote, or None when there is none (or it is garbled)."""
        rollout = status.get("rollout")
        weight = status.get("activeWeight")
        if not isinstance(rollout, Mapping) or not isinstance(weight, int):
            return None
        phase, canary = rollout.get("phase"), rollout.get("canary")
        steps = rollout.get("steps") or []
        step = rollout.get("currentStep")
        if (phase not in PHASES or not isinstance(canary, str) or not isinstance(steps, list)
                or not all(isinstance(s, int) for s in steps)):
            return None
        if not (isinstance(step, int) and 0 <= step < len(steps)):
            step = None
        since = rollout.get("lastTransitionTime")
        return cls(canary=canary, steps=tuple(steps), current_step=step,
                   active_weight=max(0, min(100, weight)), phase=phase,
                   message=str(rollout.get("message") or ""),
                   last_transition_time=since if isinstance(since, str) else None,
                   checks=Checks.from_status(rollout.get("analysis")))

    @property
    def where(self) -> tuple[str, int | None, int]:
        """What the proxies see change: phase, step and weight."""
        return self.phase, self.current_step, self.active_weight

    def _moved(self, **changes: Any) -> State:
        return dataclasses.replace(self, **changes)


def parse_action(value: str | None) -> Action | str | None:
    """The action an annotation value asks for; an unknown value is returned as is (refused)."""
    if value is None:
        return None
    cleaned = value.strip().lower()
    return cleaned if cleaned in ACTIONS else value


def advance(
    spec: Spec, previous: State | None, action: str | None, *, now: str,
    blocked: str | None = None, reason: str | None = None, gate: str | None = None,
    check: CheckRun | None = None,
) -> State:
    """The next state: `previous` reconciled with `spec`, then `action` applied (or refused).

    `blocked` says why the config cannot be served now; `reason` is the abort reason; `gate`
    says why the weight may not rise yet (None: it may); `check` is an analysis check just run.
    """
    if blocked is not None:
        base = previous if previous is not None else _fresh(spec)._moved(active_weight=0)
        # "waiting: "/"held: " mark messages that lapse once the config is served again.
        if action is not None:
            message = f"{'held' if previous else 'waiting'}: {action} refused: {blocked}"
        elif previous is None:
            message = f"waiting: {blocked}; the canary takes no traffic until then"
        else:
            message = f"held: {blocked}"
        return _stamp(base._moved(message=message), previous, now)
    base = _reconcile(spec, previous)
    if base.message.startswith(_TRANSIENT):
        base = base._moved(message=_describe(spec, base))
    if check is not None:
        base = _record(spec, base, check, now)
    result = _apply(spec, base, action, reason) if action is not None else _automatic(spec, base)
    result = _gated(spec, previous, base, result, action, gate)
    return _stamp(_fresh_checks(spec, result), previous, now)


def check_due(spec: Spec, state: State, now: datetime.datetime) -> float | None:
    """Seconds until the next analysis check (<= 0: now); None when no check applies."""
    if spec.analysis is None or state.phase != "Progressing" or state.current_step is None:
        return None
    since = (state.checks.last_check if state.checks is not None
             and state.checks.step == state.current_step else None) or state.last_transition_time
    if since is None:
        return 0.0
    try:
        then = datetime.datetime.fromisoformat(since)
    except ValueError:
        return 0.0
    return spec.analysis.interval - (now - then).total_seconds()


def transition_event(previous: State | None, state: State,
                     action: str | None) -> tuple[Literal["Normal", "Warning"], str, str] | None:
    """The Event (type, reason, message) a reconcile's rollout change deserves, if any."""
    if previous is None or previous.canary != state.canary:
        return None
    if previous.where == state.where:
        if action is not None and state.pending is None and "refused" in state.message:
            return "Warning", "RolloutActionRefused", state.message
        return None
    if state.phase == "Aborted":
        return "Warning", "RolloutAborted", state.message
    if state.phase == "Paused" and state.message.startswith("analysis failed"):
        return "Warning", "AnalysisFailed", state.message
    reasons = {"Promoted": "RolloutPromoted", "Paused": "RolloutPaused",
               "Progressing": "RolloutStep", "Idle": "RolloutWeight"}
    if previous.phase in ("Aborted", "Paused") and state.phase != "Paused":
        return "Normal", "RolloutResumed", state.message
    return "Normal", reasons[state.phase], state.message


_TRANSIENT: Final = ("held: ", "waiting: ")


def _record(spec: Spec, state: State, check: CheckRun, now: str) -> State:
    """`state` with `check` counted (ignored when it is about another step or phase)."""
    plan = spec.analysis
    if plan is None or state.phase != "Progressing" or state.current_step != check.step:
        return state
    seen = state.checks if state.checks is not None and state.checks.step == check.step else (
        Checks(check.step))
    verdict = check.verdict
    passes = seen.passes + 1 if verdict == "Passed" else 0
    failures = seen.failures + 1 if verdict == "Failed" else (
        0 if verdict == "Passed" else seen.failures)
    checks = Checks(check.step, passes, failures, now, check.results)
    at = f"step {check.step} ({state.active_weight}%)"
    if verdict == "Failed":
        message = (f"analysis failed at {at}: {check.describe()} ({failures} failed check(s) "
                   f"in a row, limit {plan.failure_limit})")
    elif verdict == "Inconclusive":
        message = f"analysis inconclusive at {at}: {check.describe()}; checking again"
    else:
        needed = (f"{passes} of {plan.checks_per_step} passing checks before autoPromote"
                  if plan.auto_promote else f"{passes} passing check(s) in a row; promote to "
                  "continue")
        message = f"analysis passed at {at}: {needed}"
    return state._moved(checks=checks, message=message)


def _automatic(spec: Spec, state: State) -> State:
    """What analysis does by itself: act on failures, and advance only with autoPromote."""
    plan = spec.analysis
    if plan is None or not spec.steps:
        return state
    checks = state.checks
    if state.phase == "Progressing" and checks is not None and checks.step == state.current_step:
        if checks.failures >= plan.failure_limit:
            if plan.on_failure == "abort":
                return _apply(spec, state, "abort", state.message)
            return state._moved(phase="Paused", message=state.message + "; paused: fix the "
                                "canary then resume, or abort")
        if plan.auto_promote and checks.passes >= plan.checks_per_step:
            return _auto(_promote(spec, state))
    if plan.auto_promote and state.phase == "Idle" and state.current_step is None:
        return _auto(_promote(spec, state))
    return state


def _auto(state: State) -> State:
    return state._moved(message="autoPromote: " + state.message)


def _gated(spec: Spec, previous: State | None, base: State, result: State,
           action: str | None, gate: str | None) -> State:
    """Hold any raise of the weight while `gate` is closed; the action stays pending."""
    held = previous.active_weight if previous is not None and previous.canary == spec.canary \
        else 0
    if gate is None or result.active_weight <= held:
        return result
    if result is base or (action is None and base.active_weight > held):
        # The spec itself asks for more (a weight-only canary's spec.canary.weight).
        return base._moved(active_weight=held, message=f"waiting: weight {base.active_weight}% "
                           f"applies once {gate}")
    what = action if action is not None else "autoPromote"
    return base._moved(active_weight=min(base.active_weight, held), pending=action,
                       message=f"waiting: {what} to {result.active_weight}% applies once {gate}")


def _fresh_checks(spec: Spec, state: State) -> State:
    """A new step starts its analysis over; without analysis there is no record."""
    if spec.analysis is None:
        return state._moved(checks=None) if state.checks is not None else state
    step = state.current_step
    if state.phase == "Progressing" and step is not None and (
            state.checks is None or state.checks.step != step):
        return state._moved(checks=Checks(step))
    return state


def _describe(spec: Spec, state: State) -> str:
    """A neutral message for a state whose last message no longer holds."""
    if state.phase == "Promoted":
        return _promoted_message(spec, "promoted")
    if state.phase == "Aborted":
        return "aborted: every request goes to the stable pipeline; resume to continue"
    if state.current_step is not None:
        return f"{state.phase.lower()} at step {state.current_step} ({state.active_weight}%)"
    return _fresh(spec).message if state.phase == "Idle" else f"{state.phase.lower()} at 0%"


def _fresh(spec: Spec) -> State:
    if spec.steps:
        return State(spec.canary, spec.steps, None, 0, "Idle",
                     f"ready: steps {list(spec.steps)}; the canary takes no traffic until the "
                     "first promote")
    return State(spec.canary, (), None, spec.weight, "Idle",
                 f"weight {spec.weight}% from spec.canary.weight")


def _reconcile(spec: Spec, previous: State | None) -> State:
    """The previous state carried over to the current spec (no action yet)."""
    if previous is None or previous.canary != spec.canary:
        fresh = _fresh(spec)
        if previous is not None:
            fresh = fresh._moved(message=f"new canary '{spec.canary}' (was "
                                 f"'{previous.canary}'): rollout restarted; " + fresh.message)
        return fresh
    aborted = previous.phase == "Aborted"
    if not spec.steps:
        if aborted:
            return previous._moved(steps=(), current_step=None)
        if previous.steps or previous.active_weight != spec.weight or previous.phase != "Idle":
            return _fresh(spec)
        return previous
    if previous.steps == spec.steps:
        return previous
    previous = previous._moved(checks=None)
    # The plan changed: never raise the weight without an action; hold at or below it.
    index = _clamp(spec.steps, previous.active_weight)
    changed = f"steps changed from {list(previous.steps)} to {list(spec.steps)}"
    if aborted:
        return previous._moved(steps=spec.steps, current_step=index)
    if previous.phase == "Promoted":
        return previous._moved(steps=spec.steps, current_step=len(spec.steps) - 1)
    if index is None:
        return State(spec.canary, spec.steps, None, 0, "Paused",
                     f"{changed}: no step is at or below the weight in force "
                     f"({previous.active_weight}%), so the canary is back at 0; promote to "
                     f"go to step 0 ({spec.steps[0]}%)")
    return State(spec.canary, spec.steps, index, spec.steps[index], "Paused",
                 f"{changed}: holding at step {index} ({spec.steps[index]}%), never above the "
                 "weight in force; promote to continue", previous.last_transition_time)


def _clamp(steps: tuple[int, ...], weight: int) -> int | None:
    """The highest step index whose weight is at most `weight`."""
    found = None
    for index, step in enumerate(steps):
        if step <= weight:
            found = index
    return found


def _apply(spec: Spec, state: State, action: str, reason: str | None) -> State:
    if action == "abort":
        why = (reason or "").strip() or "no reason given"
        back = (f"resume returns to step {state.current_step}" if state.current_step is not None
                else "resume restores the weight")
        return state._moved(active_weight=0, phase="Aborted",
                            message=f"aborted: {why}; every request goes to the stable "
                            f"pipeline; {back}")
    if action == "resume":
        return _resume(spec, state)
    if action == "promote":
        return _promote(spec, state)
    if action == "pause":
        if not spec.steps or state.phase not in ("Progressing", "Idle"):
            return state._moved(message=f"pause refused: nothing to pause (phase {state.phase}"
                                + ("" if spec.steps else ", no steps") + ")")
        return state._moved(phase="Paused", message=f"paused at {state.active_weight}%; "
                            "promote or resume to continue")
    return state._moved(message=f"unknown action '{action}' in annotation {ANNOTATION}; "
                        f"use {', '.join(ACTIONS)}")


def _promote(spec: Spec, state: State) -> State:
    if not spec.steps:
        return state._moved(message="promote refused: this canary has no steps; change "
                            "spec.canary.weight, or add spec.canary.steps")
    if state.phase == "Aborted":
        return state._moved(message="promote refused: the rollout is aborted; resume first")
    if state.phase == "Promoted":
        return state._moved(message=_promoted_message(spec, "already promoted"))
    index = 0 if state.current_step is None else state.current_step + 1
    if index >= len(spec.steps):
        return state._moved(current_step=len(spec.steps) - 1, active_weight=100,
                            phase="Promoted", message=_promoted_message(spec, "promoted"))
    return state._moved(current_step=index, active_weight=spec.steps[index], phase="Progressing",
                        message=f"promoted to step {index} of {len(spec.steps)} "
                        f"({spec.steps[index]}%)")


def _promoted_message(spec: Spec, what: str) -> str:
    return (f"{what}: every request goes to the canary '{spec.canary}'; finish in Git: set "
            f"spec.pipeline to '{spec.canary}' and remove spec.canary")


def _resume(spec: Spec, state: State) -> State:
    if state.phase == "Aborted":
        if not spec.steps:
            return _fresh(spec)._moved(message=f"resumed: weight {spec.weight}% from "
                                       "spec.canary.weight")
        if state.current_step is None:
            return state._moved(active_weight=0, phase="Idle",
                                message="resumed: no step taken yet; promote to go to step 0")
        weight = spec.steps[state.current_step]
        return state._moved(active_weight=weight, phase="Progressing", checks=None,
                            message=f"resumed at step {state.current_step} ({weight}%)")
    if state.phase == "Paused":
        phase: Phase = "Idle" if state.current_step is None else "Progressing"
        return state._moved(phase=phase, checks=None,
                            message=f"resumed at {state.active_weight}%")
    return state._moved(message=f"resume refused: nothing to resume (phase {state.phase})")


def _stamp(state: State, previous: State | None, now: str) -> State:
    """lastTransitionTime moves only when the phase, step or weight does."""
    same = previous is not None and (previous.phase, previous.current_step,
                                     previous.active_weight) == (
        state.phase, state.current_step, state.active_weight)
    since = previous.last_transition_time if same and previous is not None else None
    return state._moved(last_transition_time=since or now)
