"""`vpipe serve --kubernetes` on a real kube-apiserver, with only proxy/rbac/'s Role.

The sidecar reads and watches its namespace's vpipe-config through the API as the pod's
ServiceAccount, bound by proxy/rbac/config-reader.yaml (get/list/watch on that one ConfigMap,
by resourceNames; list and watch are narrowed with a fieldSelector on the name). The real RBAC
authorizer decides whether that is enough; an edit reaches the proxy through the watch.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kapi.conftest import REFUSED, VPIPE, Process, mint_token, path, pipeline, route, wait_for
from tests.kapi.controlplane import ROOT, Api, ControlPlane
from vpipe_api.loading import parse_resources
from vpipe_api.render import configmap_manifest, render

pytestmark = pytest.mark.timeout(300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_map(ns: str, models: list[str]) -> dict[str, Any]:
    resources = parse_resources([
        {**pipeline("mock-v1"), "metadata": {"name": "mock-v1", "namespace": ns}},
        {**route("chat", "mock-v1", models), "metadata": {"name": "chat", "namespace": ns}},
    ])
    return configmap_manifest(render(resources.pipelines, resources.routes, namespace=ns))


def readyz(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return json.loads(answer.read())  # type: ignore[no-any-return]
    except OSError:
        return {}


def test_sidecar_watches_its_config_with_the_documented_role(
        kapi: ControlPlane, api: Api, ns: str, tmp_path: Path) -> None:
    for doc in yaml.safe_load_all((ROOT / "proxy" / "rbac" / "config-reader.yaml").read_text()):
        plural = {"Role": "roles", "RoleBinding": "rolebindings"}[doc["kind"]]
        for subject in doc.get("subjects", []):
            subject["namespace"] = ns
        api.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/{plural}", doc)
    wait_for(lambda: api.find(f"/api/v1/namespaces/{ns}/serviceaccounts/default"),
             what="the default ServiceAccount")
    (tmp_path / "token").write_text(mint_token(api, ns, "default"))
    api.create(path("ConfigMap", ns), config_map(ns, ["gpt-*"]))
    port, admin = free_port(), free_port()
    env = {**os.environ, "VPIPE_KUBE_SERVER": kapi.server,
           "VPIPE_KUBE_TOKEN_FILE": str(tmp_path / "token"), "VPIPE_KUBE_CA_FILE": str(kapi.ca)}
    proxy = Process([VPIPE, "serve", "--kubernetes", "-n", ns, "--port", str(port),
                     "--admin-port", str(admin)], env, tmp_path / "proxy.log")
    try:
        first = wait_for(lambda: readyz(admin).get("revision"), what="the proxy ready")
        edited = config_map(ns, ["gpt-*", "o1-*"])
        api.merge_patch(path("ConfigMap", ns, "vpipe-config"),
                        {"metadata": {"annotations": edited["metadata"]["annotations"]},
                         "data": edited["data"]})
        second = wait_for(lambda: (r := readyz(admin).get("revision")) != first and r,
                          what="the edit through the watch", timeout=10)
        assert second != first
    finally:
        proxy.stop()
        print(proxy.log()[-4000:])
    log = proxy.log()
    assert not REFUSED.search(log) and "watch of" not in log, log  # no refusal, no broken watch
