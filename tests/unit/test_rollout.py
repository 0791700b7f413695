"""The rollout state machine (`vpipe_operator.rollout`), pure: spec + state + action -> state.

Aspects tested: a new stepped canary is Idle at 0; promote moves one step at a time and past the
last step is Promoted at 100; abort sets 0 and keeps the reason and the step; resume returns to
the step (or the spec weight); pause; refused actions (unknown, promote while aborted, promote
without steps, nothing to resume) change only the message; a blocked config (invalid canary)
keeps the weight in force, 0 for a new canary; weight-only canaries follow spec.canary.weight;
a changed steps plan never raises the weight; a new canary Pipeline restarts; lastTransitionTime
moves only with the phase, step or weight; the status round trip; the model and the CRD agree
on what a valid steps plan is.
"""

from __future__ import annotations

import pydantic
import pytest

from vpipe_api.resources import Canary
from vpipe_operator import rollout
from vpipe_operator.rollout import Spec, State

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"
PLAN = Spec("v2", 0, (5, 25, 50, 100))


def run(spec: Spec, *actions: str | None, start: State | None = None,
        blocked: str | None = None) -> State:
    state = start
    for action in actions:
        state = rollout.advance(spec, state, action, now=T0, blocked=blocked)
    assert state is not None
    return state


def where(state: State) -> tuple[str, int | None, int]:
    return state.phase, state.current_step, state.active_weight


def test_a_new_plan_is_idle_at_zero() -> None:
    assert where(run(PLAN, None)) == ("Idle", None, 0)


@pytest.mark.parametrize(("promotes", "expected"), [
    (1, ("Progressing", 0, 5)), (2, ("Progressing", 1, 25)), (3, ("Progressing", 2, 50)),
    (4, ("Progressing", 3, 100)), (5, ("Promoted", 3, 100)), (6, ("Promoted", 3, 100)),
])
def test_promote_one_step_at_a_time(promotes: int, expected: tuple[str, int, int]) -> None:
    state = run(PLAN, None, *["promote"] * promotes)
    assert where(state) == expected
    if expected[0] == "Promoted":
        assert "set spec.pipeline to 'v2' and remove spec.canary" in state.message


def test_promote_past_a_last_step_below_100_is_promoted_at_100() -> None:
    assert where(run(Spec("v2", 0, (10, 30)), None, "promote", "promote", "promote")) == (
        "Promoted", 1, 100)


def test_abort_records_the_reason_and_resume_returns_to_the_step() -> None:
    at_step = run(PLAN, None, "promote", "promote")
    aborted = rollout.advance(PLAN, at_step, "abort", now=T1, reason="p99 doubled")
    assert where(aborted) == ("Aborted", 1, 0)
    assert "p99 doubled" in aborted.message and aborted.last_transition_time == T1
    assert "no reason given" in run(PLAN, "abort", start=at_step).message
    assert where(run(PLAN, "resume", start=aborted)) == ("Progressing", 1, 25)
    assert where(run(PLAN, "abort", "resume", start=None)) == ("Idle", None, 0)


def test_abort_after_promoted_and_resume() -> None:
    promoted = run(PLAN, None, *["promote"] * 5)
    assert where(run(PLAN, "abort", start=promoted)) == ("Aborted", 3, 0)
    assert where(run(PLAN, "abort", "resume", "promote", start=promoted)) == ("Promoted", 3, 100)


def test_pause_and_resume() -> None:
    paused = run(PLAN, None, "promote", "pause")
    assert where(paused) == ("Paused", 0, 5)
    assert where(run(PLAN, "resume", start=paused)) == ("Progressing", 0, 5)
    assert where(run(PLAN, "promote", start=paused)) == ("Progressing", 1, 25)


@pytest.mark.parametrize(("start", "action", "words"), [
    (("promote", "abort"), "promote", "promote refused: the rollout is aborted"),
    (("promote",), "resume", "resume refused"),
    (("promote", "abort"), "pause", "pause refused"),
    (("promote",), "bogus", "unknown action 'bogus'"),
])
def test_refused_actions_change_only_the_message(start: tuple[str, ...], action: str,
                                                 words: str) -> None:
    before = run(PLAN, None, *start)
    after = run(PLAN, action, start=before)
    assert where(after) == where(before)
    assert words in after.message


def test_parse_action() -> None:
    assert rollout.parse_action(" Promote ") == "promote"
    assert rollout.parse_action("promot") == "promot"
    assert rollout.parse_action(None) is None


def test_blocked_keeps_zero_for_a_new_canary_and_refuses_actions() -> None:
    why = "canary Pipeline 'v2' is not Validated"
    waiting = run(PLAN, None, blocked=why)
    assert where(waiting) == ("Idle", None, 0) and waiting.message.startswith("waiting: ")
    refused = run(PLAN, "promote", start=waiting, blocked=why)
    assert where(refused) == ("Idle", None, 0) and refused.message == f"held: promote refused: {why}"
    weight_only = run(Spec("v2", 40, ()), None, blocked=why)
    assert weight_only.active_weight == 0  # the gate: 0 until the canary is Validated
    # Unblocked: the plan's own message is back; the refused promote is not replayed.
    assert where(run(PLAN, None, start=refused)) == ("Idle", None, 0)
    assert "first promote" in run(PLAN, None, start=refused).message


def test_blocked_keeps_the_weight_in_force() -> None:
    at_step = run(PLAN, None, "promote", "promote")
    held = run(PLAN, "promote", start=at_step, blocked="held")
    assert where(held) == ("Progressing", 1, 25)
    assert "refused" in held.message


def test_weight_only_follows_the_spec_and_refuses_promote() -> None:
    state = run(Spec("v2", 10, ()), None)
    assert where(state) == ("Idle", None, 10)
    assert where(run(Spec("v2", 30, ()), None, start=state)) == ("Idle", None, 30)
    assert "no steps" in run(Spec("v2", 10, ()), "promote", start=state).message
    aborted = run(Spec("v2", 10, ()), "abort", start=state)
    assert where(aborted) == ("Aborted", None, 0)
    # A new weight in Git does not undo an explicit abort; resume does.
    assert where(run(Spec("v2", 50, ()), None, start=aborted)) == ("Aborted", None, 0)
    assert where(run(Spec("v2", 50, ()), "resume", start=aborted)) == ("Idle", None, 50)


@pytest.mark.parametrize(("new_steps", "expected"), [
    ((5, 25, 50, 100), ("Progressing", 2, 50)),  # unchanged
    ((10, 20, 40, 80), ("Paused", 2, 40)),  # clamped down, never up
    ((5, 50), ("Paused", 1, 50)),
    ((60, 100), ("Paused", None, 0)),  # nothing at or below 50: back to 0
    ((1, 2, 3, 4, 5, 50, 70), ("Paused", 5, 50)),
])
def test_steps_changed_mid_rollout(new_steps: tuple[int, ...],
                                   expected: tuple[str, int | None, int]) -> None:
    at_50 = run(PLAN, None, "promote", "promote", "promote")
    changed = run(Spec("v2", 0, new_steps), None, start=at_50)
    assert where(changed) == expected
    if new_steps != PLAN.steps:
        assert "steps changed" in changed.message


def test_steps_changes_keep_abort_and_promoted() -> None:
    aborted = run(PLAN, None, "promote", "promote", "abort")
    assert where(run(Spec("v2", 0, (10, 20)), None, start=aborted))[0] == "Aborted"
    promoted = run(PLAN, None, *["promote"] * 5)
    assert where(run(Spec("v2", 0, (10, 20)), None, start=promoted)) == ("Promoted", 1, 100)


def test_weight_only_to_steps_and_back() -> None:
    weighted = run(Spec("v2", 30, ()), None)
    assert where(run(PLAN, None, start=weighted)) == ("Paused", 1, 25)
    stepped = run(PLAN, None, "promote")
    assert where(run(Spec("v2", 20, ()), None, start=stepped)) == ("Idle", None, 20)


def test_a_new_canary_pipeline_restarts() -> None:
    at_step = run(PLAN, None, "promote", "promote")
    restarted = run(Spec("v3", 0, PLAN.steps), None, start=at_step)
    assert where(restarted) == ("Idle", None, 0) and restarted.canary == "v3"
    assert "rollout restarted" in restarted.message


def test_last_transition_time_moves_only_with_the_position() -> None:
    first = rollout.advance(PLAN, None, "promote", now=T0)
    same = rollout.advance(PLAN, first, None, now=T1)
    refused = rollout.advance(PLAN, first, "bogus", now=T1)
    moved = rollout.advance(PLAN, first, "promote", now=T1)
    assert first.last_transition_time == T0
    assert same.last_transition_time == T0 and refused.last_transition_time == T0
    assert moved.last_transition_time == T1


def test_status_round_trip() -> None:
    state = run(PLAN, None, "promote", "promote")
    status = state.to_status()
    assert status["activeWeight"] == 25
    assert status["rollout"] == {"phase": "Progressing", "canary": "v2", "steps": [5, 25, 50, 100],
                                 "currentStep": 1, "lastTransitionTime": T0,
                                 "message": state.message}
    assert State.from_status(status) == state
    assert "currentStep" not in run(PLAN, None).to_status()["rollout"]
    for garbled in ({}, {"activeWeight": 5}, {"activeWeight": 5, "rollout": {"phase": "Nope"}},
                    {"activeWeight": "5", "rollout": status["rollout"]}):
        assert State.from_status(garbled) is None


@pytest.mark.parametrize("steps", [[5, 25, 50, 100], [100], [1, 2]])
def test_model_accepts_ascending_steps(steps: list[int]) -> None:
    assert Canary.model_validate({"pipeline": "v2", "steps": steps}).steps == steps


@pytest.mark.parametrize(("canary", "words"), [
    ({"steps": [5, 5]}, "strictly ascending"),
    ({"steps": [50, 25]}, "strictly ascending"),
    ({"steps": [0, 25]}, "greater than or equal to 1"),
    ({"steps": [25, 101]}, "less than or equal to 100"),
    ({"steps": []}, "at least 1 item"),
    ({"steps": list(range(1, 12))}, "at most 10 items"),
    ({"steps": [10], "weight": 10}, "exclusive"),
])
def test_model_rejects_bad_steps(canary: dict[str, object], words: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=words):
        Canary.model_validate({"pipeline": "v2", **canary})
