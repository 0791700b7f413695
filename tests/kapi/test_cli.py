"""The `vpipe` CLI against a real kube-apiserver, logged in through a kubeconfig `exec` plugin.

The user is a ServiceAccount holding exactly what docs/rollout.md says the CLI needs (`get` and
`patch` on routes.vpipe.io in the namespace); its token reaches the CLI only through an exec
plugin (a script printing an ExecCredential), the way EKS, GKE, AKS and kubelogin log users in.
The operator runs as the chart's ServiceAccount and applies the actions.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kapi.conftest import VPIPE, Process, assert_no_forbidden, mint_token, path, pipeline, wait_for
from tests.kapi.conftest import route as make_route
from tests.kapi.controlplane import Api, ControlPlane

PLUGIN = """\
import json, pathlib, sys
runs = pathlib.Path(sys.argv[2])
runs.write_text(str(int(runs.read_text() or 0) + 1) if runs.exists() else "1")
token = pathlib.Path(sys.argv[1]).read_text().strip()
if not token:
    sys.exit("plugin: not logged in (run `login` first)")
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": token}}))
"""

# Session start-up (kapi, kubectl) is charged to the first test that needs it.
pytestmark = pytest.mark.timeout(300)


def release_manager(api: Api, ns: str) -> str:
    """A ServiceAccount allowed what the CLI needs, and nothing else; returns its token."""
    api.create(path("ServiceAccount", ns), {"metadata": {"name": "release-manager"}})
    api.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", {
        "metadata": {"name": "vpipe-rollout"},
        "rules": [{"apiGroups": ["vpipe.io"], "resources": ["routes"], "verbs": ["get", "patch"]}]})
    api.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", {
        "metadata": {"name": "vpipe-rollout"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "vpipe-rollout"},
        "subjects": [{"kind": "ServiceAccount", "name": "release-manager", "namespace": ns}]})
    return mint_token(api, ns, "release-manager")


def exec_kubeconfig(kapi: ControlPlane, directory: Path, token: str, ns: str) -> Path:
    (directory / "token").write_text(token)
    (directory / "plugin.py").write_text(PLUGIN)
    return kapi.write_kubeconfig(directory / "kubeconfig", {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
        "args": [str(directory / "plugin.py"), str(directory / "token"), str(directory / "runs")],
        "interactiveMode": "Never"}}, namespace=ns)


def vpipe(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run([VPIPE, *args], env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def rollout(api: Api, ns: str) -> dict[str, Any]:
    return api.get(path("Route", ns, "glm")).get("status") or {}


def test_rollout_actions_through_an_exec_plugin(
        kapi: ControlPlane, api: Api, ns: str, tmp_path: Path,
        run_operator: Callable[..., Process]) -> None:
    kubeconfig = exec_kubeconfig(kapi, tmp_path, release_manager(api, ns), ns)
    operator = run_operator("-n", ns)
    api.create(path("Pipeline", ns), pipeline("glm-v1"))
    api.create(path("Pipeline", ns), pipeline("glm-v2"))
    api.create(path("Route", ns), make_route("glm", "glm-v1", ["glm-*"],
                                             canary={"pipeline": "glm-v2", "steps": [10, 50]}))
    wait_for(lambda: rollout(api, ns)["rollout"]["phase"] == "Idle", what="the rollout Idle")

    # No -n: the namespace comes from the kubeconfig's context.
    done = vpipe(kubeconfig, "promote", "glm")
    assert done.returncode == 0, done.stderr
    assert f"Route {ns}/glm: stable glm-v1, canary glm-v2" in done.stdout
    assert "active weight: 10%" in done.stdout and "phase:         Progressing" in done.stdout
    assert rollout(api, ns)["activeWeight"] == 10

    done = vpipe(kubeconfig, "pause", "glm")
    assert done.returncode == 0 and "phase:         Paused" in done.stdout, done
    done = vpipe(kubeconfig, "resume", "glm")
    assert done.returncode == 0 and "phase:         Progressing" in done.stdout, done
    done = vpipe(kubeconfig, "rollout", "promote", "glm", "-n", ns)
    assert done.returncode == 0 and "active weight: 50%" in done.stdout, done
    done = vpipe(kubeconfig, "abort", "glm", "--reason", "p99 doubled")
    assert done.returncode == 0 and "phase:         Aborted" in done.stdout, done
    state = rollout(api, ns)
    assert state["activeWeight"] == 0 and "p99 doubled" in state["rollout"]["message"]
    status = vpipe(kubeconfig, "rollout", "status", "glm")
    assert status.returncode == 0 and "active weight: 0%" in status.stdout, status
    assert int((tmp_path / "runs").read_text()) >= 6  # every command logged in through the plugin
    assert_no_forbidden(operator)


def test_exec_plugin_errors_and_missing_rights_are_reported(
        kapi: ControlPlane, api: Api, ns: str, tmp_path: Path) -> None:
    api.create(path("Pipeline", ns), pipeline("glm-v1"))
    api.create(path("Route", ns), make_route("glm", "glm-v1", ["glm-*"]))
    # A token of an account with no rights at all: the API refuses, the CLI says what it needs.
    api.create(path("ServiceAccount", ns), {"metadata": {"name": "nobody"}})
    kubeconfig = exec_kubeconfig(kapi, tmp_path, mint_token(api, ns, "nobody"), ns)
    done = vpipe(kubeconfig, "promote", "glm")
    assert done.returncode == 1 and "403" in done.stderr, done
    # The advice is about the user's rights, not the operator's ClusterRole (it said that once).
    assert "your kubeconfig's user may not get" in done.stderr, done.stderr
    assert "need get and patch on routes.vpipe.io" in done.stderr, done.stderr
    assert "ClusterRole" not in done.stderr, done.stderr
    # A plugin that fails: an error before any request, not an anonymous call.
    (tmp_path / "token").write_text("")
    done = vpipe(kubeconfig, "promote", "glm")
    assert done.returncode == 1, done
    assert "exec plugin gave no credential" in done.stderr, done.stderr


def test_vpipe_crds_is_what_the_cluster_serves(kapi: ControlPlane) -> None:
    printed = subprocess.run([VPIPE, "crds"], capture_output=True, text=True, timeout=60,
                             check=True).stdout
    crds = [d for d in yaml.safe_load_all(printed) if d]
    assert sorted(d["metadata"]["name"] for d in crds) == ["pipelines.vpipe.io", "routes.vpipe.io"]
    # `vpipe crds | kubectl apply -f -` as the README says; `kubectl diff` exits 0 when the
    # cluster already holds exactly this (the session installed crds/).
    diff = kapi.kubectl("diff", "-f", "-", stdin=printed, check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr
