"""The REST client (`vpipe_operator.kube`) against kmock: calls, paging, and error classification.

One place maps HTTP failures to the operator's errors: 404 NotFound (get -> None, delete ->
False), 409 Conflict, 429 TooManyRequests with Retry-After as the delay, 5xx ServerError,
401/403 Forbidden naming the verb to grant, and no response at all ApiUnreachable. Secret values
never leave the client: `secret_keys` returns key names only.
"""

from __future__ import annotations

import base64
from typing import Any

import kmock
import pytest

from tests.operator.harness import Cluster
from vpipe_operator import errors, kube
from vpipe_operator.credentials import Credentials


def client_for(url: str) -> kube.KubeClient:
    return kube.KubeClient(Credentials(server=url, origin="test", token="t0ken"), timeout=5)


async def test_crud_and_secret_keys(cluster: Cluster) -> None:
    async with client_for(cluster.url) as client:
        assert await client.get(kube.CONFIGMAPS, "ns", "cm") is None
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cm", "namespace": "ns"}, "data": {"a": "1", "b": "2"}}
        await client.create(kube.CONFIGMAPS, "ns", body)
        await client.patch(kube.CONFIGMAPS, "ns", "cm", {"data": {"a": None, "c": "3"}})
        assert (await client.get(kube.CONFIGMAPS, "ns", "cm") or {})["data"] == {"b": "2", "c": "3"}
        assert [o["metadata"]["name"] for o in await client.list(kube.CONFIGMAPS, "ns")] == ["cm"]
        assert await client.delete(kube.CONFIGMAPS, "ns", "cm") is True
        assert await client.delete(kube.CONFIGMAPS, "ns", "cm") is False

        value = base64.b64encode(b"sk-secret").decode()
        await cluster.create({"kind": "Secret", "metadata": {"name": "s", "namespace": "ns"},
                              "data": {"api-key": value}})
        assert await client.secret_keys("ns", "s") == frozenset({"api-key"})
        assert await client.secret_keys("ns", "missing") is None
    sent = cluster.operator_requests()
    assert all(r.headers.get("Authorization") == "Bearer t0ken" for r in sent)
    assert any(r.headers.get("Content-Type") == kube.MERGE_PATCH for r in sent)


async def test_list_follows_continue_tokens(cluster: Cluster) -> None:
    def page(request: kmock.Request) -> dict[str, Any]:
        if request.params.get("continue") == "p2":
            return {"metadata": {}, "items": [{"metadata": {"name": "b"}}]}
        return {"metadata": {"continue": "p2"}, "items": [{"metadata": {"name": "a"}}]}

    cluster.k["get /apis/vpipe.io/v1alpha1/namespaces/ns/routes"] << page
    async with client_for(cluster.url) as client:
        items = await client.list(kube.ROUTES, "ns")
    assert [i["metadata"]["name"] for i in items] == ["a", "b"]


@pytest.mark.parametrize(("status", "headers", "error", "delay"), [
    (409, {}, errors.Conflict, None),
    (429, {"Retry-After": "3"}, errors.TooManyRequests, 3.0),
    (503, {}, errors.ServerError, None),
    (403, {}, errors.Forbidden, None),
    (401, {}, errors.Forbidden, None),
    (422, {}, errors.PermanentApiError, None),
])
async def test_errors_are_classified(
    cluster: Cluster, status: int, headers: dict[str, str], error: type[errors.ApiError],
    delay: float | None,
) -> None:
    body = {"kind": "Status", "reason": "Because", "message": "x" * 1000}
    cluster.k.objects["v1/configmaps", "ns", "cm"] = {"metadata": {"name": "cm"}}
    cluster.k["patch /api/v1/namespaces/ns/configmaps/cm"] << status << kmock.headers(headers) << body
    async with client_for(cluster.url) as client:
        with pytest.raises(error) as caught:
            await client.patch(kube.CONFIGMAPS, "ns", "cm", {"data": {}})
    assert caught.value.status == status and caught.value.reason == "Because"
    assert len(str(caught.value)) < 600  # the payload is truncated
    if isinstance(caught.value, errors.TemporaryApiError):
        assert caught.value.delay == delay
    if status in (401, 403):
        assert "may not patch" in str(caught.value) and "clusterrole.yaml" in str(caught.value)


async def test_unreachable_server_is_temporary() -> None:
    async with client_for("http://127.0.0.1:9") as client:
        with pytest.raises(errors.ApiUnreachable) as caught:
            await client.get(kube.CONFIGMAPS, "ns", "cm")
    assert isinstance(caught.value, errors.TemporaryApiError)
    assert "API server http://127.0.0.1:9" in str(caught.value)


def test_paths() -> None:
    assert kube.ROUTES.path("ns", "r", "status") == "/apis/vpipe.io/v1alpha1/namespaces/ns/routes/r/status"
    assert kube.CONFIGMAPS.path("ns") == "/api/v1/namespaces/ns/configmaps"
    assert kube.EVENTS.api_version == "v1" and kube.PIPELINES.api_version == "vpipe.io/v1alpha1"


def test_forbidden_advice_names_whose_rights_are_missing() -> None:
    operator = kube.classify("GET", "/apis/vpipe.io/v1alpha1/namespaces/a/routes/r", 403, b"{}",
                             None)
    assert "operator/rbac/clusterrole.yaml" in str(operator)
    cli = kube.classify("PATCH", "/x", 403, b"{}", None,
                        "your kubeconfig's user may not {verb} {path}: grant it")
    assert "your kubeconfig's user may not patch /x: grant it" in str(cli)
    assert "ClusterRole" not in str(cli)
