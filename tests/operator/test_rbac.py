"""The RBAC manifests in operator/rbac/ and the audit that keeps them honest.

Every functional test already fails when the operator (or kopf) makes a request the ClusterRole
does not grant (see `conftest.cluster`). Here: the request -> (apiGroup, resource, verb) mapping
itself, that the audit catches an ungranted verb, that Secrets stay get-only, and that the
ServiceAccount, ClusterRole and ClusterRoleBinding refer to each other.
"""

from __future__ import annotations

import kmock
import pytest
import yaml

from tests.operator.harness import RBAC_DIR, cluster_role_rules, granted, rbac_key, ungranted


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    ("GET", "/api/v1/namespaces/ns/configmaps/vpipe-config", {}, ("", "configmaps", "get")),
    ("GET", "/api/v1/configmaps", {"watch": "true"}, ("", "configmaps", "watch")),
    ("GET", "/apis/vpipe.io/v1alpha1/namespaces/ns/routes", {}, ("vpipe.io", "routes", "list")),
    ("PATCH", "/apis/vpipe.io/v1alpha1/namespaces/ns/routes/r/status", {},
     ("vpipe.io", "routes/status", "patch")),
    ("POST", "/api/v1/namespaces/ns/events", {}, ("", "events", "create")),
    ("DELETE", "/api/v1/namespaces/ns/configmaps/x", {}, ("", "configmaps", "delete")),
    ("DELETE", "/api/v1/namespaces/ns/configmaps", {}, ("", "configmaps", "deletecollection")),
    ("PUT", "/api/v1/namespaces/ns/configmaps/x", {}, ("", "configmaps", "update")),
    ("GET", "/api/v1/namespaces", {}, ("", "namespaces", "list")),
    ("GET", "/api/v1/namespaces/ns", {}, ("", "namespaces", "get")),
    ("GET", "/apis/apiextensions.k8s.io/v1", {}, None),
    ("GET", "/api", {}, None),
    ("GET", "/version", {}, None),
])
def test_request_to_verb(
    method: str, path: str, query: dict[str, str], expected: tuple[str, str, str] | None
) -> None:
    assert rbac_key(method, path, query) == expected


def test_the_audit_catches_an_ungranted_verb() -> None:
    requests = [
        kmock.Request(method="PATCH", url="http://x/api/v1/namespaces/ns/configmaps/vpipe-config"),
        kmock.Request(method="PUT", url="http://x/api/v1/namespaces/ns/configmaps/vpipe-config"),
        kmock.Request(method="GET", url="http://x/api/v1/namespaces/ns/secrets"),
    ]
    assert ungranted(requests) == {("", "configmaps", "update"), ("", "secrets", "list")}


def test_secrets_are_get_only_and_nothing_is_a_wildcard() -> None:
    rules = cluster_role_rules()
    assert granted(rules, "", "secrets", "get")
    for verb in ("list", "watch", "create", "patch", "update", "delete"):
        assert not granted(rules, "", "secrets", verb)
    for verb in ("create", "patch", "update", "delete"):  # users own their Pipelines and Routes
        assert not granted(rules, "vpipe.io", "pipelines", verb)
    for rule in rules:
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"]


def test_manifests_refer_to_each_other() -> None:
    account = yaml.safe_load((RBAC_DIR / "serviceaccount.yaml").read_text())
    role = yaml.safe_load((RBAC_DIR / "clusterrole.yaml").read_text())
    binding = yaml.safe_load((RBAC_DIR / "clusterrolebinding.yaml").read_text())
    assert account["kind"] == "ServiceAccount" and binding["kind"] == "ClusterRoleBinding"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": account["metadata"]["namespace"]}]
