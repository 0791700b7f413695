"""The sidecar-injection webhook called by a real kube-apiserver.

The chart's MutatingWebhookConfiguration is registered as rendered (both webhooks, their
namespace and object selectors, failurePolicy, timeouts) with one change: there is no Service
network here, so `clientConfig.service` becomes a URL on 127.0.0.1 and the caBundle is the CA
of a certificate valid for that address (base64 PEM, as the chart sets it). The webhook is
`python -m vpipe_operator.injection` with the chart's environment, running as the chart's
ServiceAccount (it reads each namespace's vpipe-config to mount the Secrets it names).

Pods are stored but never run (no nodes): the stored specs are what kubelet would get.
"""

from __future__ import annotations

import base64
import copy
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chart import helm
from tests.injection.tlsgen import make_pki
from tests.kapi.conftest import Process, path, pipeline, rendered_chart, route, wait_for
from tests.kapi.controlplane import Api, ApiError
from vpipe_api.loading import parse_resources
from vpipe_api.render import configmap_manifest, render

MWC = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"

# Session start-up (kapi, kubectl) is charged to the first test that needs it.
pytestmark = pytest.mark.timeout(300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chart_webhook_env() -> dict[str, str]:
    deployment = helm.find(rendered_chart(), "Deployment", "vpipe-operator")
    [container] = [c for c in deployment["spec"]["template"]["spec"]["containers"]
                   if c["name"] == "webhook"]
    return {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}


def registration(values: dict[str, Any] | None, port: int, ca: bytes) -> dict[str, Any]:
    """The chart's MutatingWebhookConfiguration, pointed at 127.0.0.1:`port`."""
    config = copy.deepcopy(helm.find(rendered_chart(values), "MutatingWebhookConfiguration"))
    for hook in config["webhooks"]:
        service = hook["clientConfig"].pop("service")
        assert hook["clientConfig"]["caBundle"]  # the chart sets one; ours signs 127.0.0.1
        hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{service['path']}",
                                "caBundle": base64.b64encode(ca).decode()}
    return config


class Webhook:
    def __init__(self, api: Api, identity: Path, directory: Path) -> None:
        self.api = api
        self.pki = make_pki(directory / "pki")
        self.port = free_port()
        self.env = {**os.environ, **chart_webhook_env(), "KUBECONFIG": str(identity),
                    "VPIPE_WEBHOOK_HOST": "127.0.0.1", "VPIPE_WEBHOOK_PORT": str(self.port),
                    "VPIPE_WEBHOOK_CERT_FILE": str(self.pki.cert),
                    "VPIPE_WEBHOOK_KEY_FILE": str(self.pki.key),
                    "VPIPE_WEBHOOK_SHUTDOWN_DELAY": "0", "VPIPE_WEBHOOK_NAMESPACE": "vpipe-system"}
        self.log = directory / "webhook.log"
        self.process: Process | None = None
        self.name: str | None = None

    def start(self) -> None:
        self.process = Process([sys.executable, "-m", "vpipe_operator.injection"], self.env,
                               self.log)
        wait_for(self._listening, what="the webhook listening", timeout=30)

    def _listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def register(self, values: dict[str, Any] | None = None) -> None:
        config = registration(values, self.port, self.pki.ca.read_bytes())
        self.unregister()
        self.name = config["metadata"]["name"]
        self.api.create(MWC, config)

    def unregister(self) -> None:
        if self.name:
            self.api.delete(f"{MWC}/{self.name}")


@pytest.fixture
def webhook(api: Api, chart_identity: Path, tmp_path: Path) -> Iterator[Webhook]:
    hook = Webhook(api, chart_identity, tmp_path)
    hook.start()
    hook.register()
    try:
        yield hook
    finally:
        hook.unregister()
        hook.stop()
        print(hook.log.read_text(errors="replace")[-4000:])  # shown when the test failed


@pytest.fixture
def namespace(api: Api) -> Iterator[Callable[..., str]]:
    """Make namespaces with labels; the default ServiceAccount must exist before pods can."""
    made: list[str] = []

    def make(name: str, labels: dict[str, str] | None = None) -> str:
        name = f"{name}-{os.urandom(3).hex()}"
        api.create("/api/v1/namespaces", {"metadata": {"name": name, "labels": labels or {}}})
        made.append(name)
        wait_for(lambda: api.find(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
                 what=f"the default ServiceAccount of {name}")
        return name

    yield make
    for name in made:
        api.delete(f"/api/v1/namespaces/{name}")


def pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [{"name": "app", "image": "python:3.11-slim"}]}}


def containers(stored: dict[str, Any]) -> list[str]:
    spec = stored["spec"]
    return [c["name"] for c in spec.get("initContainers", []) + spec["containers"]]


def served_config(api: Api, ns: str) -> None:
    """The vpipe-config the operator would write for a Pipeline whose key is in Secret `glm`."""
    resources = parse_resources([
        {**pipeline("glm-v1", family="glm",
                    credentials={"secretRef": {"name": "glm", "key": "api-key"}}),
         "metadata": {"name": "glm-v1", "namespace": ns}},
        {**route("glm", "glm-v1", ["glm-*"]), "metadata": {"name": "glm", "namespace": ns}},
    ])
    api.create(path("ConfigMap", ns),
               configmap_manifest(render(resources.pipelines, resources.routes, namespace=ns)))


def test_pods_in_a_labelled_namespace_get_the_sidecar(
        api: Api, webhook: Webhook, namespace: Callable[..., str]) -> None:
    ns = namespace("inject", {"vpipe.io/inject": "enabled"})
    served_config(api, ns)
    stored = api.create(path("Pod", ns), pod("app"))
    assert containers(stored) == ["app", "vpipe-proxy"], containers(stored)
    spec = stored["spec"]
    proxy = next(c for c in spec["containers"] if c["name"] == "vpipe-proxy")
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["vpipe-config"]["configMap"]["name"] == "vpipe-config"
    secret_volumes = [v for v in volumes.values() if v["name"].startswith("vpipe-secret-")]
    assert [v["secret"]["secretName"] for v in secret_volumes] == ["glm"]
    mounts = {m["name"]: m["mountPath"] for m in proxy["volumeMounts"]}
    assert mounts["vpipe-config"] == "/etc/vpipe"
    assert mounts[secret_volumes[0]["name"]] == "/var/run/vpipe/secrets/glm"
    admin = next(p["containerPort"] for p in proxy["ports"] if p["name"] == "vpipe-admin")
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": admin,
                                                  "scheme": "HTTP"}
    assert proxy["livenessProbe"]["httpGet"]["path"] == "/healthz"
    app_env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    assert app_env["OPENAI_BASE_URL"].startswith("http://127.0.0.1:")
    assert stored["metadata"]["labels"]["vpipe.io/proxy"]
    assert "vpipe.io/sidecar-status" in stored["metadata"]["annotations"]

    opted_out = api.create(path("Pod", ns), pod("opted-out", {"vpipe.io/inject": "false"}))
    assert containers(opted_out) == ["app"]


def test_other_namespaces_inject_only_pods_that_opt_in(
        api: Api, webhook: Webhook, namespace: Callable[..., str]) -> None:
    ns = namespace("plain")
    assert containers(api.create(path("Pod", ns), pod("plain"))) == ["app"]
    opted_in = api.create(path("Pod", ns), pod("opted-in", {"vpipe.io/inject": "true"}))
    assert containers(opted_in) == ["app", "vpipe-proxy"]
    # Without a vpipe-config there is nothing to mount but the (optional) ConfigMap.
    assert [v["name"] for v in opted_in["spec"]["volumes"]
            if v["name"].startswith("vpipe-")] == ["vpipe-config"]
    disabled = namespace("disabled", {"vpipe.io/inject": "disabled"})
    assert containers(api.create(path("Pod", disabled),
                                 pod("never", {"vpipe.io/inject": "true"}))) == ["app"]


def test_webhook_down_with_the_charts_failure_policy(
        api: Api, webhook: Webhook, namespace: Callable[..., str]) -> None:
    ns = namespace("down", {"vpipe.io/inject": "enabled"})
    webhook.stop()
    # failurePolicy Ignore (the chart's default): the pod is admitted, without the sidecar.
    admitted = api.create(path("Pod", ns), pod("admitted"))
    assert containers(admitted) == ["app"]
    # failurePolicy Fail: refused, and the message names our webhook.
    webhook.register({"webhook": {"failurePolicy": "Fail"}})
    with pytest.raises(ApiError) as refused:
        api.create(path("Pod", ns), pod("refused"))
    assert refused.value.status == 500 and "namespace.inject.vpipe.io" in str(refused.value)
