"""The Argo CD health checks of docs/gitops.md, run in a real Lua runtime (`lupa`).

The scripts are read from the docs themselves (the `argocd-cm` example), so what users copy is
what is tested. Argo CD runs a script with the resource as the global `obj` and reads back the
returned table's `status` and `message`; so does this test. Aspects tested, for Pipeline and
Route alike: Healthy when Ready=True, Degraded when Validated=False (its message), Progressing
with no status, a stale status (observedGeneration behind), or Ready=False while valid.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.chart.helm import ROOT

lupa = pytest.importorskip("lupa", reason="runs the Lua health checks")

KINDS = ("Pipeline", "Route")


def scripts() -> dict[str, str]:
    text = (ROOT / "docs" / "gitops.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    for doc in (d for block in blocks for d in yaml.safe_load_all(block)):
        if isinstance(doc, dict) and (doc.get("metadata") or {}).get("name") == "argocd-cm":
            return {k.rsplit("_", 1)[1]: v for k, v in doc["data"].items()
                    if k.startswith("resource.customizations.health.vpipe.io_")}
    raise AssertionError("docs/gitops.md has no argocd-cm example")


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    hs = runtime.execute(scripts()[kind])
    return str(hs["status"]), str(hs["message"])


def resource(kind: str, *conditions: dict[str, str], generation: int = 3,
             observed: int | None = 3) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": list(conditions)} if conditions else {}
    if observed is not None and conditions:
        status["observedGeneration"] = observed
    obj: dict[str, Any] = {"apiVersion": "vpipe.io/v1alpha1", "kind": kind,
                           "metadata": {"name": "glm", "namespace": "team-a",
                                        "generation": generation}}
    if status:
        obj["status"] = status
    return obj


def condition(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    c = {"type": type_, "status": status, "lastTransitionTime": "2025-01-01T00:00:00Z"}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def test_docs_have_a_check_per_kind() -> None:
    assert sorted(scripts()) == sorted(KINDS)
    assert len(set(scripts().values())) == 1  # the same logic for both kinds


@pytest.mark.parametrize("kind", KINDS)
def test_ready_is_healthy(kind: str) -> None:
    obj = resource(kind, condition("Validated", "True"),
                   condition("Ready", "True", "Rendered", "Serving revision 9f2c1e"))
    assert health(kind, obj) == ("Healthy", "Serving revision 9f2c1e")


@pytest.mark.parametrize("kind", KINDS)
def test_invalid_is_degraded_with_the_operator_message(kind: str) -> None:
    message = "spec.canary.pipeline: Pipeline glm-v3 does not exist in team-a"
    obj = resource(kind, condition("Validated", "False", "InvalidSpec", message),
                   condition("Ready", "False", "InvalidSpec"))
    assert health(kind, obj) == ("Degraded", message)
    no_message = resource(kind, condition("Validated", "False", "InvalidSpec"))
    assert health(kind, no_message) == ("Degraded", "InvalidSpec")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("obj_args", "message"), [
    ({}, "Waiting for the vpipe operator"),
    ({"conditions": [condition("Validated", "True"),
                     condition("Ready", "False", "CanaryLoading", "Canary glm-v2 is loading")]},
     "Canary glm-v2 is loading"),
    ({"conditions": [condition("Validated", "False", "InvalidSpec"), condition("Ready", "True")],
      "generation": 4},
     "The vpipe operator has not seen generation 4 yet"),
    ({"conditions": [condition("Validated", "True")]}, "Waiting for the vpipe operator"),
])
def test_everything_else_is_progressing(kind: str, obj_args: dict[str, Any], message: str) -> None:
    obj = resource(kind, *obj_args.get("conditions", ()), generation=obj_args.get("generation", 3))
    assert health(kind, obj) == ("Progressing", message)


@pytest.mark.parametrize("kind", KINDS)
def test_status_without_observed_generation_is_still_judged(kind: str) -> None:
    obj = resource(kind, condition("Ready", "True"), observed=None)
    assert health(kind, obj) == ("Healthy", "Ready")
