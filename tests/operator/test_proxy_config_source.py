"""The proxy's `kubernetes` config source against the kmock API server.

Aspects: the proxy starts from the ConfigMap it reads through the API; an edit reaches it via
the watch well within the poll interval (which is set long, so only the watch can explain it);
a deleted ConfigMap keeps the last good config serving; every request it makes is granted by
proxy/rbac/config-reader.yaml.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from tests.operator.harness import Cluster, eventually, granted, rbac_key
from vpipe_api.document import CONFIGMAP_KEY, CONFIGMAP_NAME
from vpipe_api.loading import parse_resources
from vpipe_api.render import configmap_manifest, render
from vpipe_proxy.kube_source import KubernetesConfigSource
from vpipe_proxy.server import ProxyServer
from vpipe_proxy.settings import Settings

ROLE = Path(__file__).parents[2] / "proxy" / "rbac" / "config-reader.yaml"


def manifest(models: list[str]) -> dict[str, Any]:
    docs = [
        {"apiVersion": "vpipe.io/v1alpha1", "kind": "Pipeline",
         "metadata": {"name": "p", "namespace": "team"},
         "spec": {"modules": [{"type": "provider", "provider": {"family": "mock"}}]}},
        {"apiVersion": "vpipe.io/v1alpha1", "kind": "Route",
         "metadata": {"name": "r", "namespace": "team"},
         "spec": {"match": {"models": models}, "pipeline": "p"}},
    ]
    resources = parse_resources(docs)
    return configmap_manifest(render(resources.pipelines, resources.routes))


async def test_watch_delivers_changes(cluster: Cluster) -> None:
    await cluster.create(manifest(["a"]))
    source = KubernetesConfigSource("team", cluster.url)
    server = ProxyServer(Settings(port=0, admin_port=0, poll_interval=30), source, environ={})
    await server.start()
    try:
        runtime = server.reloader.current
        assert runtime is not None
        assert runtime.router.route("a", "openai-chat", "", {}) is not None
        started = asyncio.get_running_loop().time()
        data = manifest(["a", "b"])["data"]
        await cluster.patch("ConfigMap", "team", CONFIGMAP_NAME, {"data": data})
        await eventually(lambda: (server.reloader.current is not runtime) or None,
                         what="the edited ConfigMap to be served", timeout=10)
        assert asyncio.get_running_loop().time() - started < 5  # the poll interval is 30 s
        current = server.reloader.current
        assert current is not None
        assert current.router.route("b", "openai-chat", "", {}) is not None

        await cluster.delete("ConfigMap", "team", CONFIGMAP_NAME)
        await eventually(lambda: server.reloader.status.failures or None,
                         what="the deletion to be noticed", timeout=10)
        assert server.reloader.current is current
        assert "does not exist yet" in (server.reloader.status.error or "")
    finally:
        await server.stop()
    rules = [r for doc in yaml.safe_load_all(ROLE.read_text()) if doc["kind"] == "Role"
             for r in doc["rules"]]
    proxy_requests = [r for r in cluster.requests()
                      if str(r.headers.get("User-Agent", "")).startswith("vpipe-proxy")]
    assert proxy_requests
    for request in proxy_requests:
        key = rbac_key(request.method.value, request.url.path, request.params)
        assert key is not None and granted(rules, *key), key
        if key[2] in ("list", "watch"):
            assert request.params.get("fieldSelector") == f"metadata.name={CONFIGMAP_NAME}"
    assert CONFIGMAP_KEY in data
