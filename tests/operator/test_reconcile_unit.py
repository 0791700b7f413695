"""The pure reconcile decisions (`vpipe_operator.reconcile`, `conditions`, `configmap`), no cluster.

Covers: the desired ConfigMap equals `vpipe render`'s manifest; create / keep / repair / delete
decisions; idempotence (a plan applied, then decided again, writes nothing, and
lastTransitionTime only moves when a status flips); issue attachment and reasons
(PipelineNotFound vs InvalidSpec, PipelineInvalid for Routes of a broken or unparseable
Pipeline, issues naming no resource going to all); the held-namespace policy (ConfigHeld, and
unchanged resources staying Ready); Secrets (SecretNotFound, missing key, PipelineNotReady,
recheck); ConfigTooLarge with capped Events; Events only on change; resources being deleted.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from tests.operator.harness import pipeline, route
from vpipe_api.document import CONFIGMAP_KEY, REVISION_ANNOTATION, parse_document
from vpipe_api.errors import Issue
from vpipe_api.render import render_configmap
from vpipe_operator import conditions, configmap, reconcile

NS = "unit"
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def snap(objs: list[dict[str, Any]], cm: dict[str, Any] | None = None) -> reconcile.Snapshot:
    return reconcile.Snapshot(
        NS, tuple(reconcile.Observed.from_api(o["kind"], o) for o in objs), cm)


def plan_for(objs: list[dict[str, Any]], cm: dict[str, Any] | None = None,
             secrets: dict[str, frozenset[str] | None] | None = None, now: str = T0,
             max_events: int = 50) -> reconcile.Plan:
    analysis = reconcile.analyze(snap(objs, cm))
    return reconcile.decide(analysis, secrets or {}, now=now, max_events=max_events)


def applied(objs: list[dict[str, Any]], cm: dict[str, Any] | None, plan: reconcile.Plan
            ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """What the API server would hold after `plan` (merge patches, as kmock applies them)."""
    objs = copy.deepcopy(objs)
    for update in plan.statuses:
        for obj in objs:
            if obj["kind"] == update.kind and obj["metadata"]["name"] == update.name:
                status = {**obj.get("status", {}), **update.status}
                obj["status"] = {k: v for k, v in status.items() if v is not None}
    action = plan.configmap
    if isinstance(action, reconcile.Create):
        cm = copy.deepcopy(action.manifest)
    elif isinstance(action, reconcile.Patch):
        assert cm is not None
        cm = copy.deepcopy(cm)
        cm["metadata"]["labels"].update(action.patch["metadata"]["labels"])
        cm["metadata"]["annotations"].update(action.patch["metadata"]["annotations"])
        data = {**cm["data"], **action.patch["data"]}
        cm["data"] = {k: v for k, v in data.items() if v is not None}
    elif isinstance(action, reconcile.Delete):
        cm = None
    return objs, cm


def cond(objs: list[dict[str, Any]], name: str, type_: str) -> dict[str, Any]:
    obj = next(o for o in objs if o["metadata"]["name"] == name)
    found = conditions.find(obj.get("status", {}), type_)
    assert found is not None, f"{name} has no {type_} condition"
    return dict(found)


def base() -> list[dict[str, Any]]:
    return [pipeline("mock-v1", NS), route("a", NS, "mock-v1", ["a-*"], priority=1)]


def test_valid_namespace_creates_the_render_configmap() -> None:
    plan = plan_for(base())
    assert isinstance(plan.configmap, reconcile.Create)
    analysis = reconcile.analyze(snap(base()))
    assert analysis.document is not None
    assert plan.configmap.manifest == yaml.safe_load(render_configmap(analysis.document))
    assert plan.revision == analysis.document.revision
    assert {u.name for u in plan.statuses} == {"mock-v1", "a"}
    assert plan.events == () and not plan.recheck
    objs, _ = applied(base(), None, plan)
    ready = cond(objs, "a", "Ready")
    assert ready == {"type": "Ready", "status": "True", "reason": "Served",
                     "message": ready["message"], "observedGeneration": 1,
                     "lastTransitionTime": T0}
    assert objs[1]["status"]["configRevision"] == plan.revision
    assert objs[1]["status"]["observedGeneration"] == 1


def test_applied_plan_is_a_fixed_point() -> None:
    objs, cm = applied(base(), None, plan_for(base()))
    again = plan_for(objs, cm, now=T1)
    assert again.writes == 0 and isinstance(again.configmap, reconcile.Keep)


def test_transition_time_moves_only_when_status_flips() -> None:
    objs, cm = applied(base(), None, plan_for(base()))
    objs.append(route("b", NS, "nope", ["b"]))
    objs, cm = applied(objs, cm, plan_for(objs, cm, now=T1))
    assert cond(objs, "a", "Ready")["lastTransitionTime"] == T0  # still True: unchanged
    assert cond(objs, "b", "Validated")["lastTransitionTime"] == T1
    # Same status (False), different reason and message: the time stays.
    objs[-1]["spec"]["match"]["models"] = ["re:("]
    objs, cm = applied(objs, cm, plan_for(objs, cm, now="2026-01-01T00:09:00Z"))
    validated = cond(objs, "b", "Validated")
    assert validated["reason"] == "InvalidSpec" and validated["lastTransitionTime"] == T1


def test_hand_edited_configmap_is_repaired_and_foreign_keys_removed() -> None:
    objs, cm = applied(base(), None, plan_for(base()))
    assert cm is not None
    good = copy.deepcopy(cm)
    cm["data"] = {CONFIGMAP_KEY: "{}", "extra": "by hand"}
    plan = plan_for(objs, cm)
    assert isinstance(plan.configmap, reconcile.Patch)
    assert plan.configmap.patch["data"]["extra"] is None
    _, repaired = applied(objs, cm, plan)
    assert repaired == good
    cm = copy.deepcopy(good)
    cm["metadata"]["annotations"][REVISION_ANNOTATION] = "bogus"
    assert isinstance(plan_for(objs, cm).configmap, reconcile.Patch)


def test_empty_namespace_deletes_only_a_managed_configmap() -> None:
    _, cm = applied(base(), None, plan_for(base()))
    assert isinstance(plan_for([], cm).configmap, reconcile.Delete)
    assert cm is not None
    foreign = copy.deepcopy(cm)
    foreign["metadata"]["labels"] = {}
    assert isinstance(plan_for([], foreign).configmap, reconcile.Keep)
    assert isinstance(plan_for([], None).configmap, reconcile.Keep)


def test_missing_pipeline_is_pipeline_not_found_and_holds_the_config() -> None:
    objs, cm = applied(base(), None, plan_for(base()))
    objs += [route("lost", NS, "nope", ["lost"], priority=5), route("new", NS, "mock-v1", ["n"])]
    plan = plan_for(objs, cm, now=T1)
    assert isinstance(plan.configmap, reconcile.Keep)
    assert plan.revision == configmap.revision(cm)
    objs, cm = applied(objs, cm, plan)
    lost = cond(objs, "lost", "Validated")
    assert (lost["status"], lost["reason"]) == ("False", "PipelineNotFound")
    assert lost["message"].startswith("spec.pipeline: Pipeline 'nope' does not exist")
    assert cond(objs, "lost", "Ready")["reason"] == "PipelineNotFound"
    assert [(e.name, e.reason, e.type) for e in plan.events] == [
        ("lost", "PipelineNotFound", "Warning")]
    # Unchanged and served before: still Ready. New: valid but held.
    assert cond(objs, "a", "Ready")["status"] == "True"
    held = cond(objs, "new", "Ready")
    assert (held["status"], held["reason"]) == ("False", "ConfigHeld")
    assert "Route/unit/lost" in held["message"]
    assert "configRevision" not in objs[-1]["status"]
    assert plan_for(objs, cm, now="2026-01-01T01:00:00Z").writes == 0


def test_bad_regex_and_priority_tie_are_invalid_spec() -> None:
    objs = [*base(), route("rx", NS, "mock-v1", ["re:(oops"]),
            route("tie", NS, "mock-v1", ["a-1"], priority=1)]
    objs, _ = applied(objs, None, plan_for(objs))
    rx = cond(objs, "rx", "Validated")
    assert rx["reason"] == "InvalidSpec" and rx["message"].startswith("spec.match.models[0]:")
    tie = cond(objs, "tie", "Validated")
    assert tie["reason"] == "InvalidSpec" and "ties with Route 'a'" in tie["message"]
    assert tie["message"].startswith("spec.priority:")


def test_invalid_pipeline_makes_its_routes_pipeline_invalid() -> None:
    objs = [pipeline("weird", NS, family="no-such-family"), route("r", NS, "weird", ["r"]),
            {**pipeline("broken", NS), "spec": {"modules": "not a list"}},
            route("s", NS, "broken", ["s"])]
    plan = plan_for(objs)
    objs, _ = applied(objs, None, plan)
    weird = cond(objs, "weird", "Validated")
    assert weird["reason"] == "InvalidSpec" and "unknown family 'no-such-family'" in weird["message"]
    assert cond(objs, "broken", "Validated")["reason"] == "InvalidSpec"
    for name in ("r", "s"):  # the unparseable pipeline exists: not PipelineNotFound
        assert cond(objs, name, "Validated")["status"] == "True"
        assert cond(objs, name, "Ready")["reason"] == "PipelineInvalid"
    assert {e.name for e in plan.events} == {"weird", "broken"}


def test_issues_naming_no_resource_go_to_every_resource() -> None:
    refs = {"Route/unit/a", "Pipeline/unit/p"}
    own, shared = reconcile.attach_issues(
        [Issue("Route/unit/a", "spec.priority", "x"), Issue("resources", "", "everyone")], refs)
    assert own == {"Route/unit/a": [Issue("Route/unit/a", "spec.priority", "x")]}
    assert shared == [Issue("resources", "", "everyone")]


def test_a_missing_secret_holds_the_config_and_marks_the_pipeline() -> None:
    """A proxy cannot load a config whose secret it cannot read: the ConfigMap keeps the last
    good revision until the Secret and key exist; what that revision serves stays Ready."""
    first = plan_for(base())
    assert isinstance(first.configmap, reconcile.Create)
    objs, cm = applied(base(), None, first)
    creds = {"secretRef": {"name": "openai", "key": "api-key"}}
    objs = [*objs, pipeline("openai", NS, family="openai", credentials=creds),
            route("gpt", NS, "openai", ["gpt-*"], priority=2)]
    analysis = reconcile.analyze(snap(objs, cm))
    assert analysis.secret_names == {"openai"}
    plan = reconcile.decide(analysis, {"openai": None}, now=T0)
    assert isinstance(plan.configmap, reconcile.Keep) and plan.recheck
    assert plan.revision == first.revision
    objs2, _ = applied(objs, cm, plan)
    missing = cond(objs2, "openai", "Ready")
    assert (missing["status"], missing["reason"]) == ("False", "SecretNotFound")
    assert "Secret 'openai' (key 'api-key'" in missing["message"]
    assert f"stays at its last good revision ({first.revision})" in missing["message"]
    assert cond(objs2, "gpt", "Ready")["reason"] == "PipelineNotReady"
    assert cond(objs2, "a", "Ready")["status"] == "True"
    assert [(e.name, e.reason) for e in plan.events] == [("openai", "SecretNotFound")]

    no_key = reconcile.decide(analysis, {"openai": frozenset({"token"})}, now=T0)
    assert isinstance(no_key.configmap, reconcile.Keep)
    objs3, _ = applied(objs, cm, no_key)
    assert "has no key 'api-key' (referenced by" in cond(objs3, "openai", "Ready")["message"]

    fine = reconcile.decide(analysis, {"openai": frozenset({"api-key"})}, now=T0)
    assert isinstance(fine.configmap, reconcile.Patch) and not fine.recheck
    objs4, cm4 = applied(objs, cm, fine)
    assert cond(objs4, "openai", "Ready")["status"] == "True"
    assert cm4 is not None and "openai" in parse_document(cm4["data"][CONFIGMAP_KEY]).pipelines


def test_a_new_route_waits_with_the_config_a_secret_holds() -> None:
    creds = {"secretRef": {"name": "openai", "key": "api-key"}}
    objs = [*base(), pipeline("openai", NS, family="openai", credentials=creds)]
    plan = plan_for(objs, secrets={"openai": None})
    assert isinstance(plan.configmap, reconcile.Keep) and plan.revision is None
    objs, _ = applied(objs, None, plan)
    held = cond(objs, "a", "Ready")
    assert (held["status"], held["reason"]) == ("False", "ConfigHeld")
    assert "Pipeline 'openai' references a Secret that does not exist" in held["message"]


def test_config_too_large_writes_nothing_and_caps_events() -> None:
    objs = [pipeline("mock-v1", NS)] + [
        route(f"r{i}", NS, "mock-v1", [f"m-{i}-{j}-" + "x" * 100 for j in range(100)])
        for i in range(100)
    ]
    plan = plan_for(objs, max_events=7)
    assert isinstance(plan.configmap, reconcile.Keep) and plan.revision is None
    assert len(plan.events) == 7 and plan.events_dropped == len(objs) - 7
    objs, _ = applied(objs, None, plan)
    ready = cond(objs, "r5", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ConfigTooLarge")
    assert "over the 1048576-byte ConfigMap limit" in ready["message"]
    assert cond(objs, "r5", "Validated")["status"] == "True"
    assert plan_for(objs, None, max_events=7).writes == 0


def test_resources_being_deleted_are_ignored() -> None:
    objs = base()
    objs[1]["metadata"]["deletionTimestamp"] = T0
    plan = plan_for(objs)
    assert isinstance(plan.configmap, reconcile.Create)
    assert parse_document(plan.configmap.manifest["data"][CONFIGMAP_KEY]).routes == []
    assert {u.name for u in plan.statuses} == {"mock-v1"}


def test_condition_messages_are_capped() -> None:
    issues = [Issue("Route/unit/a", f"spec.x[{i}]", "y" * 300) for i in range(20)]
    message = conditions.describe(issues)
    assert len(message) <= conditions.MAX_MESSAGE + 30 and message.endswith("more problems)")
    assert conditions.reason_for(issues) == "InvalidSpec"
    assert conditions.reason_for([Issue("r", "spec.pipeline", "m")]) == "PipelineNotFound"


def test_configmap_size_counts_keys_and_values() -> None:
    assert configmap.data_size({"data": {"k": "vv"}}) == 3
    assert configmap.data_size({"data": {"k": "é"}}) == 3  # bytes, not characters
