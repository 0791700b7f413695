"""Rollouts in the pure reconcile (`reconcile.analyze`/`decide`) and the renderer, no cluster.

Covers: the rendered document carries the active weight, not the plan; `render()` without
weights (offline `vpipe render`) serves a stepped canary at 0; an action annotation becomes a
metadata patch that removes it (with the resourceVersion it was read at) plus the new rollout
status; once applied, deciding again writes nothing; removing spec.canary clears the rollout
status; an invalid canary Pipeline holds the config and refuses the action, saying why.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from tests.operator.harness import pipeline, route
from vpipe_api.loading import parse_resources
from vpipe_api.render import render
from vpipe_operator import reconcile, rollout

NS = "unit"
T0 = "2026-01-01T00:00:00Z"


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    out = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def objects(action: str | None = None, canary_family: str = "mock") -> list[dict[str, Any]]:
    r = route("glm", NS, "v1", ["glm-*"])
    r["spec"]["canary"] = {"pipeline": "v2", "steps": [5, 25, 100]}
    r["metadata"]["resourceVersion"] = "7"
    if action is not None:
        r["metadata"]["annotations"] = {rollout.ANNOTATION: action}
    return [pipeline("v1", NS), pipeline("v2", NS, family=canary_family), r]


def decide(objs: list[dict[str, Any]], cm: dict[str, Any] | None = None) -> reconcile.Plan:
    snapshot = reconcile.Snapshot(
        NS, tuple(reconcile.Observed.from_api(o["kind"], o) for o in objs), cm)
    return reconcile.decide(reconcile.analyze(snapshot), {}, now=T0)


def apply(objs: list[dict[str, Any]], plan: reconcile.Plan) -> tuple[list[dict[str, Any]],
                                                                      dict[str, Any] | None]:
    objs = copy.deepcopy(objs)
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objs}
    for meta in plan.metadata:
        obj = by_name[meta.kind, meta.name]
        obj["metadata"] = merge(obj["metadata"], meta.patch["metadata"])
    for update in plan.statuses:
        obj = by_name[update.kind, update.name]
        obj["status"] = merge(obj.get("status", {}), update.status)
    action = plan.configmap
    cm = action.manifest if isinstance(action, reconcile.Create) else None
    return objs, cm


def weight(plan: reconcile.Plan) -> int:
    assert isinstance(plan.configmap, reconcile.Create)
    doc = orjson.loads(plan.configmap.manifest["data"]["config.json"])
    return int(doc["routes"][0]["canary"]["weight"])


def route_status(plan: reconcile.Plan) -> dict[str, Any]:
    return next(u.status for u in plan.statuses if u.kind == "Route")


def test_render_uses_active_weights_and_defaults_to_the_spec() -> None:
    parsed = parse_resources(objects())
    offline = render(parsed.pipelines, parsed.routes)
    assert offline.routes[0].canary is not None and offline.routes[0].canary.weight == 0
    live = render(parsed.pipelines, parsed.routes, weights={"glm": 25})
    assert live.routes[0].canary is not None and live.routes[0].canary.weight == 25
    assert live.revision != offline.revision


def test_promote_is_consumed_recorded_and_idempotent() -> None:
    objs = objects("promote")
    plan = decide(objs)
    assert weight(plan) == 5
    assert [m.patch for m in plan.metadata] == [{"metadata": {
        "annotations": {rollout.ANNOTATION: None, rollout.REASON_ANNOTATION: None},
        "resourceVersion": "7"}}]
    status = route_status(plan)
    assert status["activeWeight"] == 5
    assert status["rollout"]["phase"] == "Progressing" and status["rollout"]["currentStep"] == 0
    objs, cm = apply(objs, plan)
    again = decide(objs, cm)
    assert again.writes == 0, again


def test_removing_the_canary_clears_the_rollout_status() -> None:
    objs, cm = apply(objects("promote"), decide(objects("promote")))
    objs[2]["spec"].pop("canary")
    status = route_status(decide(objs, cm))
    assert status["activeWeight"] is None and status["rollout"] is None


def test_invalid_canary_holds_and_refuses() -> None:
    plan = decide(objects("promote", canary_family="nope"))
    assert isinstance(plan.configmap, reconcile.Keep)
    status = route_status(plan)
    assert status["activeWeight"] == 0
    assert "promote refused: canary Pipeline 'v2' is not Validated" in status["rollout"]["message"]
    assert len(plan.metadata) == 1  # consumed: refused now, never replayed later
