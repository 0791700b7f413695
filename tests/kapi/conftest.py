"""Fixtures of the real-apiserver tier: one control plane per session, a namespace per test.

The session starts `kapi` once (etcd + kube-apiserver + controller-manager, ~5-9 s), installs
the CRDs from crds/, and creates the chart's operator identity: the rendered ServiceAccount,
ClusterRole and ClusterRoleBinding, and a token for that ServiceAccount minted with the
TokenRequest API (what the kubelet mounts in a pod). Tests run the operator, the webhook and
the CLI as subprocesses against it, as users would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.chart import helm
from tests.kapi.controlplane import ROOT, Api, ControlPlane, find_etcd, find_kubectl, kapi_script

T = TypeVar("T")
RELEASE_NAMESPACE = helm.NAMESPACE  # vpipe-system, as in the chart tests
GV = "vpipe.io/v1alpha1"
VPIPE = str(Path(sys.executable).parent / "vpipe")  # the console script users run


@pytest.fixture(scope="session")
def kapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    script = kapi_script()
    if not script.is_file():
        pytest.skip(f"no real API server: {script} is missing (set VPIPE_KAPI to the kapi script; "
                    "without it, hack/e2e-kind.sh covers a real cluster where Docker exists)")
    etcd, why = find_etcd()
    if etcd is None:
        pytest.skip(f"no etcd for kapi: {why}")
    kubectl, why = find_kubectl()
    if kubectl is None:
        pytest.skip(f"no kubectl for the kapi tier: {why}")
    directory = tmp_path_factory.mktemp("kapi")
    binaries = ROOT / ".cache" / "kapi" / "bin"  # kapi unpacks its binaries once, not per run
    binaries.mkdir(parents=True, exist_ok=True)
    (directory / "bin").symlink_to(binaries)
    plane = ControlPlane.start(directory, etcd=etcd, kubectl=kubectl)
    try:
        plane.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                      "crd/pipelines.vpipe.io", "crd/routes.vpipe.io")
        # The OpenAPI document (kubectl explain) follows Established by a moment.
        wait_for(lambda: all(plane.kubectl("explain", kind, check=False).returncode == 0
                             for kind in ("pipelines", "routes")),
                 what="the CRDs in the OpenAPI document", timeout=60, interval=0.5)
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def api(kapi: ControlPlane) -> Api:
    """Admin access (system:masters), for setting up and checking, never for the code under test."""
    return kapi.api()


@pytest.fixture
def ns(api: Api, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for this test, deleted afterwards (the namespace controller empties it)."""
    name = f"t-{request.node.name[5:30].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    name = "".join(c for c in name if c.isalnum() or c == "-")
    api.create("/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    api.delete(f"/api/v1/namespaces/{name}")


# --- the chart's operator identity -------------------------------------------------------------

def rendered_chart(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return helm.template(values)


@pytest.fixture(scope="session")
def chart_identity(kapi: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig for the chart's ServiceAccount, bound by the chart's RBAC (peering on).

    Every operator in this tier serves only its test's namespace, so the RBAC is that of a
    release with `operator.namespaces` (which decides the kopf peering kind it grants).
    """
    api = kapi.api()
    docs = rendered_chart({"operator": {"namespaces": ["any"], "peering": {"enabled": True}}})
    api.create("/api/v1/namespaces", {"metadata": {"name": RELEASE_NAMESPACE}})
    wanted = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    manifests = [d for d in docs if d["kind"] in wanted]
    assert {d["kind"] for d in manifests} >= {"ServiceAccount", "ClusterRole",
                                              "ClusterRoleBinding"}
    kapi.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(manifests))
    # kopf's peering CRDs, from the chart's crds/ folder, as `helm install` would apply them.
    kapi.kubectl("apply", "--server-side", "-f", str(helm.CHART / "crds"))
    account = next(d for d in manifests if d["kind"] == "ServiceAccount")["metadata"]["name"]
    directory = tmp_path_factory.mktemp("identity")
    return kapi.write_kubeconfig(directory / "kubeconfig",
                                 {"token": mint_token(api, RELEASE_NAMESPACE, account)})


def mint_token(api: Api, namespace: str, account: str, seconds: int = 3600) -> str:
    """A token for the ServiceAccount, from the TokenRequest API (`kubectl create token`)."""
    answer = api.create(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
                        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                         "spec": {"expirationSeconds": seconds}})
    return str(answer["status"]["token"])


# --- processes ---------------------------------------------------------------------------------

class Process:
    """A `vpipe` subprocess whose output goes to a file the test can read while it runs."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("ab")
        self.popen = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait()
        self._log.close()
        return code


def chart_operator_env(values: dict[str, Any] | None = None) -> dict[str, str]:
    """The VPIPE_OPERATOR_* settings the chart's Deployment gives the operator container."""
    docs = rendered_chart(values)
    deployment = helm.find(docs, "Deployment", "vpipe-operator")
    [container] = [c for c in deployment["spec"]["template"]["spec"]["containers"]
                   if c["name"] == "operator"]
    env = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
    env.pop("VPIPE_OPERATOR_LIVENESS", None)  # a fixed port: replicas on one host would clash
    return env


@pytest.fixture
def run_operator(chart_identity: Path, tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Start `vpipe operator` processes as the chart's ServiceAccount; all stopped at the end."""
    started: list[Process] = []

    def start(*flags: str, name: str = "operator", values: dict[str, Any] | None = None,
              **settings: str) -> Process:
        env = {**os.environ, **chart_operator_env(values), "KUBECONFIG": str(chart_identity),
               "VPIPE_OPERATOR_DEBOUNCE": "0.1", "VPIPE_OPERATOR_BACKOFF": "0.2", **settings}
        process = Process([VPIPE, "operator", *flags], env,
                          tmp_path / f"{name}-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
        # Shown by pytest only when the test failed.
        log = process.log()
        shown = log if len(log) < 8000 else f"{log[:4000]}\n[...]\n{log[-4000:]}"
        print(f"--- {process.log_path.name}\n{shown}")


REFUSED = re.compile(r"\b403\b|[Ff]orbidden")  # not "403" inside a port number or a hash


def assert_no_forbidden(process: Process) -> None:
    """A permission the operator needs but the chart does not grant shows up as a 403 here."""
    log = process.log()
    refused = REFUSED.search(log)
    assert refused is None, f"the operator was refused something:\n{log[-4000:]}"


# --- polling -----------------------------------------------------------------------------------

def wait_for(check: Callable[[], T | None], *, what: str, timeout: float = 30.0,
             interval: float = 0.1) -> T:
    """Poll `check` until it returns something truthy (KeyError/TypeError count as not yet)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
        except (KeyError, TypeError, IndexError) as e:
            value, last = None, e
        else:
            last = value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c  # type: ignore[no-any-return]
    return None


def path(kind: str, namespace: str, name: str | None = None) -> str:
    plural = {"Pipeline": "pipelines", "Route": "routes"}.get(kind)
    if plural:
        root = f"/apis/{GV}/namespaces/{namespace}/{plural}"
    else:
        root = f"/api/v1/namespaces/{namespace}/{kind.lower()}s"
    return f"{root}/{name}" if name else root


def pipeline(name: str, *, family: str = "mock", **provider: Any) -> dict[str, Any]:
    return {"apiVersion": GV, "kind": "Pipeline", "metadata": {"name": name},
            "spec": {"modules": [{"type": "provider", "provider": {"family": family, **provider}}]}}


def route(name: str, pipeline_name: str, models: list[str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": GV, "kind": "Route", "metadata": {"name": name},
            "spec": {"match": {"models": models}, "pipeline": pipeline_name, **spec}}
