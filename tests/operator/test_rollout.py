"""Stepped canary rollouts end to end against kmock: the `vpipe.io/rollout` annotation.

Covers: a new stepped canary starts at weight 0 (Idle); each promote annotation is consumed
(removed) and moves one step, and the ConfigMap's document carries the step's weight; abort
with a reason annotation sets weight 0 and records the reason; resume returns to the step;
promote past the last step is Promoted with weight 100; an invalid canary Pipeline keeps the
weight at 0 and refuses actions, saying why; a weight-only canary behaves as before; the
`vpipe rollout` CLI against the same API.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.harness import (
    Cluster,
    OperatorThread,
    eventually,
    pipeline,
    route,
    write_kubeconfig,
)
from vpipe_cli.main import CLI_USER_AGENT, main
from vpipe_operator import rollout

NS = "team-r"
STEPS = [5, 25, 50, 100]


def stepped(name: str = "glm", steps: list[int] | None = None) -> dict[str, Any]:
    obj = route(name, NS, "glm-v1", ["glm-*"])
    obj["spec"]["canary"] = {"pipeline": "glm-v2", "steps": steps or STEPS}
    return obj


def status(cluster: Cluster, name: str = "glm") -> dict[str, Any]:
    return dict((cluster.get("Route", NS, name) or {}).get("status") or {})


def doc_weight(cluster: Cluster, name: str = "glm") -> int | None:
    document = cluster.document(NS)
    if document is None:
        return None
    for item in document.routes:
        if item.name == name and item.canary is not None:
            return item.canary.weight
    return None


async def act(cluster: Cluster, action: str, reason: str | None = None,
              name: str = "glm") -> None:
    annotations = {rollout.ANNOTATION: action}
    if reason is not None:
        annotations[rollout.REASON_ANNOTATION] = reason
    await cluster.patch("Route", NS, name, {"metadata": {"annotations": annotations}})
    await eventually(
        lambda: rollout.ANNOTATION not in ((cluster.get("Route", NS, name) or {})
                                           .get("metadata", {}).get("annotations") or {}),
        what=f"the {action} annotation consumed")


async def at(cluster: Cluster, *, phase: str, weight: int, step: int | None,
             name: str = "glm") -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        current = status(cluster, name)
        rollout_ = current.get("rollout") or {}
        if (rollout_.get("phase") == phase and current.get("activeWeight") == weight
                and rollout_.get("currentStep") == step and doc_weight(cluster, name) == weight):
            return current
        return None

    return await eventually(check, what=f"{phase} at step {step} with weight {weight}")


async def test_promote_abort_resume_promoted(cluster: Cluster, operator: OperatorThread) -> None:
    await cluster.create_all([pipeline("glm-v1", NS), pipeline("glm-v2", NS), stepped()])
    idle = await at(cluster, phase="Idle", weight=0, step=None)
    assert "first promote" in idle["rollout"]["message"]

    await act(cluster, "promote")
    await at(cluster, phase="Progressing", weight=5, step=0)
    await act(cluster, "promote")
    step1 = await at(cluster, phase="Progressing", weight=25, step=1)
    assert step1["rollout"]["lastTransitionTime"]

    await act(cluster, "abort", reason="error rate up on v2")
    aborted = await at(cluster, phase="Aborted", weight=0, step=1)
    assert "error rate up on v2" in aborted["rollout"]["message"]
    assert rollout.REASON_ANNOTATION not in (cluster.get("Route", NS, "glm") or {}).get(
        "metadata", {}).get("annotations", {})

    await act(cluster, "promote")  # refused while aborted
    refused = await eventually(
        lambda: "refused" in (status(cluster).get("rollout") or {}).get("message", ""),
        what="promote refused")
    assert refused
    assert status(cluster)["activeWeight"] == 0

    await act(cluster, "resume")
    await at(cluster, phase="Progressing", weight=25, step=1)
    await act(cluster, "promote")
    await at(cluster, phase="Progressing", weight=50, step=2)
    await act(cluster, "promote")
    await at(cluster, phase="Progressing", weight=100, step=3)
    await act(cluster, "promote")
    promoted = await at(cluster, phase="Promoted", weight=100, step=3)
    assert "spec.pipeline to 'glm-v2'" in promoted["rollout"]["message"]
    ready = cluster.condition("Route", NS, "glm", "Ready")
    assert ready["status"] == "True"


async def test_invalid_canary_keeps_weight_zero(cluster: Cluster, operator: OperatorThread) -> None:
    await cluster.create_all([pipeline("glm-v1", NS), pipeline("glm-v2", NS, family="nope"),
                              stepped()])
    waiting = await eventually(
        lambda: status(cluster).get("rollout", {}).get("message", "").startswith("waiting"),
        what="the rollout waiting for the canary")
    assert waiting
    current = status(cluster)
    assert current["activeWeight"] == 0
    assert "canary Pipeline 'glm-v2' is not Validated" in current["rollout"]["message"]

    await act(cluster, "promote")
    await eventually(lambda: "promote refused" in status(cluster)["rollout"]["message"],
                     what="promote refused")
    assert status(cluster)["activeWeight"] == 0
    assert cluster.configmap(NS) is None  # the namespace is held: nothing served

    # Fixed: served at weight 0; the refused promote is not applied later by itself.
    await cluster.patch("Pipeline", NS, "glm-v2", {"spec": {"modules": [
        {"type": "provider", "provider": {"family": "mock"}}]}})
    await at(cluster, phase="Idle", weight=0, step=None)
    await act(cluster, "promote")
    await at(cluster, phase="Progressing", weight=5, step=0)


async def test_weight_only_canary_unchanged(cluster: Cluster, operator: OperatorThread) -> None:
    obj = route("gpt", NS, "glm-v1", ["gpt-*"])
    obj["spec"]["canary"] = {"pipeline": "glm-v2", "weight": 10}
    await cluster.create_all([pipeline("glm-v1", NS), pipeline("glm-v2", NS), obj])
    await at(cluster, phase="Idle", weight=10, step=None, name="gpt")
    await cluster.patch("Route", NS, "gpt", {"metadata": {"generation": 2},
                                              "spec": {"canary": {"weight": 30}}})
    await at(cluster, phase="Idle", weight=30, step=None, name="gpt")
    await act(cluster, "abort", name="gpt")
    await at(cluster, phase="Aborted", weight=0, step=None, name="gpt")
    await act(cluster, "resume", name="gpt")
    await at(cluster, phase="Idle", weight=30, step=None, name="gpt")


async def test_cli_promote_abort_status(cluster: Cluster, operator: OperatorThread,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path, cluster.url)))
    await cluster.create_all([pipeline("glm-v1", NS), pipeline("glm-v2", NS), stepped()])
    await at(cluster, phase="Idle", weight=0, step=None)

    assert await asyncio.to_thread(main, ["rollout", "promote", "glm", "-n", NS]) == 0
    await at(cluster, phase="Progressing", weight=5, step=0)
    assert "Progressing" in capsys.readouterr().out
    assert await asyncio.to_thread(
        main, ["abort", "glm", "-n", NS, "--reason", "bad answers"]) == 0  # the shortcut
    await at(cluster, phase="Aborted", weight=0, step=0)
    assert await asyncio.to_thread(main, ["rollout", "status", "glm", "-n", NS]) == 0
    out = capsys.readouterr().out
    assert "bad answers" in out and "active weight: 0%" in out
    assert await asyncio.to_thread(main, ["rollout", "status", "nope", "-n", NS]) == 1
    assert await asyncio.to_thread(main, ["resume", "glm", "-n", NS]) == 0
    await at(cluster, phase="Progressing", weight=5, step=0)
    assert await asyncio.to_thread(main, ["promote", "glm", "-n", NS]) == 0
    await at(cluster, phase="Progressing", weight=25, step=1)

    # The CLI acts as a user, not as the operator: keep its requests out of the RBAC audit.
    cluster.compact()
    cluster._archive[:] = [r for r in cluster._archive
                           if r.headers.get("User-Agent") != CLI_USER_AGENT]


async def test_cli_logs_in_through_a_kubeconfig_exec_plugin(
        cluster: Cluster, operator: OperatorThread, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The way EKS/GKE/AKS and kubelogin log users in: the token comes from a plugin's output."""
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import json\nprint(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', "
        "'kind': 'ExecCredential', 'status': {'token': 'from-the-plugin'}}))\n")
    config = yaml.safe_load(write_kubeconfig(tmp_path, cluster.url).read_text())
    config["users"][0]["user"] = {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
        "args": [str(plugin)], "interactiveMode": "Never"}}
    (tmp_path / "exec-kubeconfig").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "exec-kubeconfig"))
    await cluster.create_all([pipeline("glm-v1", NS), pipeline("glm-v2", NS), stepped()])
    await at(cluster, phase="Idle", weight=0, step=None)
    assert await asyncio.to_thread(main, ["promote", "glm", "-n", NS]) == 0
    await at(cluster, phase="Progressing", weight=5, step=0)
    cluster.compact()
    mine = [r for r in cluster._archive if r.headers.get("User-Agent") == CLI_USER_AGENT]
    assert mine and all(r.headers.get("Authorization") == "Bearer from-the-plugin" for r in mine)
    cluster._archive[:] = [r for r in cluster._archive if r not in mine]  # not the operator's
