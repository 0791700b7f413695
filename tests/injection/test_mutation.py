"""The pure injection: `decide()` (who gets a sidecar) and `mutate()` (the JSONPatch).

Aspects tested:
- the golden patch for a bare pod, applied with a JSONPatch implementation, yields the pod we
  mean (container, volumes, env, status annotation), and it is a valid Pod for the Kubernetes
  schema (`kubernetes-validate`, when installed);
- pods that already have env, volumes, annotations or init containers get "/-" appends, and
  values the app set itself win;
- annotation overrides (image, resources, ports, native sidecar) and what happens to bad ones
  (ignored with a warning, never a broken pod: a request above its limit raises the limit);
- Secret mounts: sorted, distinct, long or dotted names still give valid volume names;
- idempotence: a patched pod is never patched again; conflicts give no patch and a warning;
- `decide()`: opt-in by annotation or label, opt-out, namespace selection, the operator's own
  namespace, hostNetwork, values that are neither true nor false.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.injection.conftest import apply_patch, make_pod
from vpipe_operator.injection import mutation
from vpipe_operator.injection.settings import SidecarSettings

SIDECAR = SidecarSettings(image="registry.example/vpipe-proxy:1.2.3")


def probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": 9090}, "periodSeconds": period,
            "timeoutSeconds": 3, "failureThreshold": failures}


GOLDEN_CONTAINER = {
    "name": "vpipe-proxy",
    "image": "registry.example/vpipe-proxy:1.2.3",
    "imagePullPolicy": "IfNotPresent",
    "args": ["serve", "--config-dir", "/etc/vpipe"],
    "env": [
        {"name": "VPIPE_HOST", "value": "127.0.0.1"},
        {"name": "VPIPE_ADMIN_HOST", "value": "0.0.0.0"},
        {"name": "VPIPE_PORT", "value": "8080"},
        {"name": "VPIPE_ADMIN_PORT", "value": "9090"},
        {"name": "VPIPE_SECRETS_DIR", "value": "/var/run/vpipe/secrets"},
        {"name": "VPIPE_SHUTDOWN_TIMEOUT", "value": "25"},
    ],
    "ports": [
        {"name": "vpipe-http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "vpipe-admin", "containerPort": 9090, "protocol": "TCP"},
    ],
    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                  "limits": {"cpu": "500m", "memory": "256Mi"}},
    "readinessProbe": probe("/readyz", 5, 3),
    "livenessProbe": probe("/healthz", 10, 3),
    "securityContext": {
        "runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
        "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    },
    "volumeMounts": [
        {"name": "vpipe-config", "mountPath": "/etc/vpipe", "readOnly": True},
        {"name": "vpipe-secret-deepseek", "mountPath": "/var/run/vpipe/secrets/deepseek",
         "readOnly": True},
    ],
    "terminationMessagePolicy": "FallbackToLogsOnError",
}

GOLDEN_PATCH = [
    {"op": "add", "path": "/spec/containers/0/env", "value": [
        {"name": "OPENAI_BASE_URL", "value": "http://127.0.0.1:8080/v1"},
        {"name": "ANTHROPIC_BASE_URL", "value": "http://127.0.0.1:8080"}]},
    {"op": "add", "path": "/spec/volumes", "value": [
        {"name": "vpipe-config", "configMap": {"name": "vpipe-config", "optional": True}},
        {"name": "vpipe-secret-deepseek", "secret": {"secretName": "deepseek", "optional": True}}]},
    {"op": "add", "path": "/spec/containers/-", "value": GOLDEN_CONTAINER},
    {"op": "add", "path": "/metadata/annotations", "value": {
        "vpipe.io/sidecar-status":
            '{"image": "registry.example/vpipe-proxy:1.2.3", "nativeSidecar": false, '
            '"secrets": ["deepseek"]}'}},
    {"op": "add", "path": "/metadata/labels", "value": {"vpipe.io/proxy": "sidecar"}},
]


def injected(pod: dict[str, Any], secrets: tuple[str, ...] = (), sidecar: SidecarSettings = SIDECAR,
             ) -> tuple[dict[str, Any], mutation.Mutation]:
    result = mutation.mutate(pod, sidecar=sidecar, secrets=secrets)
    patched: dict[str, Any] = apply_patch(pod, result.patch)
    return patched, result


def container(pod: dict[str, Any], name: str = "vpipe-proxy") -> dict[str, Any]:
    found = [c for c in pod["spec"].get("containers", []) + pod["spec"].get("initContainers", [])
             if c["name"] == name]
    assert len(found) == 1, f"expected one container {name}"
    one: dict[str, Any] = found[0]
    return one


def env_of(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "<valueFrom>") for e in c.get("env", [])}


# --- the patch ---------------------------------------------------------------------------------

def test_golden_patch_for_a_bare_pod() -> None:
    result = mutation.mutate(make_pod(), sidecar=SIDECAR, secrets=("deepseek",))
    assert list(result.patch) == GOLDEN_PATCH
    assert result.warnings == ()


def test_patched_bare_pod_is_what_we_mean() -> None:
    pod, _ = injected(make_pod(), ("deepseek",))
    assert [c["name"] for c in pod["spec"]["containers"]] == ["app", "vpipe-proxy"]
    assert env_of(container(pod, "app")) == {"OPENAI_BASE_URL": "http://127.0.0.1:8080/v1",
                                             "ANTHROPIC_BASE_URL": "http://127.0.0.1:8080"}
    status = json.loads(pod["metadata"]["annotations"]["vpipe.io/sidecar-status"])
    assert status == {"image": SIDECAR.image, "secrets": ["deepseek"], "nativeSidecar": False}


def test_patched_pod_is_a_valid_pod_for_kubernetes() -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="validates against Kubernetes schemas")
    bare = make_pod(initContainers=[{"name": "migrate", "image": "busybox"}])
    for sidecar in (SIDECAR, SidecarSettings(native_sidecar=True)):
        pod, _ = injected(bare, ("deepseek", "team.glm"), sidecar)
        pod["metadata"]["name"] = "app-7d9f-x1"
        try:
            kv.validate(pod, "1.30.0", strict=True)
        except kv.ValidationError as e:
            pytest.fail(f"injected pod is not valid: {str(e).splitlines()[0]}")


def test_existing_env_volumes_and_annotations_get_appends() -> None:
    pod = make_pod(annotations={"team": "a"}, volumes=[{"name": "data", "emptyDir": {}}])
    pod["metadata"]["labels"] = {"app": "chat"}
    pod["spec"]["containers"].append(
        {"name": "worker", "image": "w", "env": [{"name": "OPENAI_BASE_URL", "value": "http://x/v1"},
                                                 {"name": "LOG", "value": "debug"}]})
    result = mutation.mutate(pod, sidecar=SIDECAR, secrets=("glm",))
    paths = [op["path"] for op in result.patch]
    assert paths == ["/spec/containers/0/env", "/spec/containers/1/env/-", "/spec/volumes/-",
                     "/spec/volumes/-", "/spec/containers/-",
                     "/metadata/annotations/vpipe.io~1sidecar-status",
                     "/metadata/labels/vpipe.io~1proxy"]
    patched = apply_patch(pod, result.patch)
    # The operator finds the proxies by this label; the pod's own labels stay.
    assert patched["metadata"]["labels"] == {"app": "chat", "vpipe.io/proxy": "sidecar"}
    assert env_of(container(patched, "worker")) == {
        "OPENAI_BASE_URL": "http://x/v1", "LOG": "debug",  # the app's own value wins
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:8080"}
    assert [v["name"] for v in patched["spec"]["volumes"]] == [
        "data", "vpipe-config", "vpipe-secret-glm"]
    assert patched["metadata"]["annotations"]["team"] == "a"


def test_app_that_sets_both_urls_is_left_alone() -> None:
    pod = make_pod()
    pod["spec"]["containers"][0]["env"] = [
        {"name": "OPENAI_BASE_URL", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
        {"name": "ANTHROPIC_BASE_URL", "value": "http://elsewhere"}]
    result = mutation.mutate(pod, sidecar=SIDECAR)
    assert not any(op["path"].startswith("/spec/containers/0") for op in result.patch)


@pytest.mark.parametrize(("grace", "drain"), [
    (None, 25), (30, 25), (60, 55), (11, 6), (10, 5), (4, 2), (1, 0), (0, 0), ("x", 25),
    (-3, 25), (True, 25)])
def test_the_proxy_drains_within_the_pods_grace_period(grace: Any, drain: int) -> None:
    """Its whole drain ends before the kubelet's SIGKILL: 5 s early, or at half a short period."""
    pod = make_pod()
    if grace is not None:
        pod["spec"]["terminationGracePeriodSeconds"] = grace
    patched, _ = injected(pod)
    assert env_of(container(patched))["VPIPE_SHUTDOWN_TIMEOUT"] == str(drain)
    if isinstance(grace, int) and not isinstance(grace, bool) and grace > 0:
        assert drain < grace


def test_native_sidecar_is_the_first_init_container() -> None:
    pod = make_pod(initContainers=[{"name": "migrate", "image": "m"}])
    patched, _ = injected(pod, sidecar=SidecarSettings(native_sidecar=True))
    assert [c["name"] for c in patched["spec"]["initContainers"]] == ["vpipe-proxy", "migrate"]
    proxy = patched["spec"]["initContainers"][0]
    assert proxy["restartPolicy"] == "Always"
    assert proxy["startupProbe"]["httpGet"] == {"path": "/readyz", "port": 9090}
    assert [c["name"] for c in patched["spec"]["containers"]] == ["app"]
    bare, _ = injected(make_pod(), sidecar=SidecarSettings(native_sidecar=True))
    assert [c["name"] for c in bare["spec"]["initContainers"]] == ["vpipe-proxy"]


def test_native_sidecar_per_pod_annotation() -> None:
    pod = make_pod(annotations={"vpipe.io/native-sidecar": "true"})
    patched, _ = injected(pod)
    assert [c["name"] for c in patched["spec"]["initContainers"]] == ["vpipe-proxy"]


# --- overrides ---------------------------------------------------------------------------------

def test_annotation_overrides() -> None:
    pod = make_pod(annotations={
        "vpipe.io/proxy-image": "mirror.local/vpipe-proxy:dev",
        "vpipe.io/proxy-cpu-request": "100m", "vpipe.io/proxy-cpu-limit": "2",
        "vpipe.io/proxy-memory-request": "128Mi", "vpipe.io/proxy-memory-limit": "none",
        "vpipe.io/proxy-port": "18080", "vpipe.io/proxy-admin-port": "19090"})
    patched, result = injected(pod)
    assert result.warnings == ()
    proxy = container(patched)
    assert proxy["image"] == "mirror.local/vpipe-proxy:dev"
    assert proxy["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"},
                                  "limits": {"cpu": "2"}}
    assert env_of(proxy)["VPIPE_PORT"] == "18080" and env_of(proxy)["VPIPE_ADMIN_PORT"] == "19090"
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 19090}
    assert env_of(container(patched, "app"))["OPENAI_BASE_URL"] == "http://127.0.0.1:18080/v1"


@pytest.mark.parametrize(("annotation", "value", "field", "expected"), [
    ("vpipe.io/proxy-cpu-request", "lots", "cpu_request", "50m"),
    ("vpipe.io/proxy-memory-limit", "1 GB", "memory_limit", "256Mi"),
    ("vpipe.io/proxy-port", "80800", "port", 8080),
    ("vpipe.io/proxy-image", "has space:1", "image", SIDECAR.image),
    ("vpipe.io/native-sidecar", "maybe", "native_sidecar", False),
])
def test_bad_annotation_is_ignored_with_a_warning(annotation: str, value: str, field: str,
                                                  expected: Any) -> None:
    effective, warnings = mutation.apply_overrides(SIDECAR, {annotation: value})
    assert getattr(effective, field) == expected
    assert len(warnings) == 1 and annotation in warnings[0] and "ignored" in warnings[0]


def test_same_port_twice_falls_back_to_defaults() -> None:
    effective, warnings = mutation.apply_overrides(
        SIDECAR, {"vpipe.io/proxy-port": "7000", "vpipe.io/proxy-admin-port": "7000"})
    assert (effective.port, effective.admin_port) == (8080, 9090)
    assert "both 7000" in warnings[0]


def test_request_above_limit_raises_the_limit() -> None:
    effective, warnings = mutation.apply_overrides(
        SIDECAR, {"vpipe.io/proxy-cpu-request": "1500m", "vpipe.io/proxy-memory-request": "1Gi"})
    assert (effective.cpu_limit, effective.memory_limit) == ("1500m", "1Gi")
    assert len(warnings) == 2
    unchanged, none = mutation.apply_overrides(SIDECAR, {"vpipe.io/proxy-cpu-request": "0.5"})
    assert unchanged.cpu_limit == "500m" and none == []  # 0.5 == 500m: not above


def test_port_clash_with_the_app_is_warned() -> None:
    pod = make_pod()
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 8080}]
    result = mutation.mutate(pod, sidecar=SIDECAR)
    assert result.patch and "vpipe.io/proxy-port" in result.warnings[0]


# --- secrets -------------------------------------------------------------------------------------

def test_secrets_sorted_distinct_and_mounted_by_name() -> None:
    patched, _ = injected(make_pod(), ("glm", "deepseek", "glm"))
    mounts = container(patched)["volumeMounts"]
    assert [m["mountPath"] for m in mounts] == [
        "/etc/vpipe", "/var/run/vpipe/secrets/deepseek", "/var/run/vpipe/secrets/glm"]
    assert all(m["readOnly"] for m in mounts)


def test_long_and_dotted_secret_names_give_valid_volume_names() -> None:
    long_name = "a" * 200
    names = [mutation.secret_volume_name(n) for n in ("team.glm", "team-glm", long_name)]
    assert len(set(names)) == 3
    assert all(len(n) <= 63 and n.replace("-", "").isalnum() and n.islower() for n in names)
    assert names[1] == "vpipe-secret-team-glm"


def test_invalid_secret_name_is_not_mounted() -> None:
    patched, result = injected(make_pod(), ("Bad_Name", "ok"))
    assert [m["name"] for m in container(patched)["volumeMounts"]] == [
        "vpipe-config", "vpipe-secret-ok"]
    assert "'Bad_Name'" in result.warnings[0]


# --- idempotence and conflicts -------------------------------------------------------------------

def test_patched_pod_is_never_patched_again() -> None:
    patched, _ = injected(make_pod(annotations={"vpipe.io/inject": "true"}))
    decision = mutation.decide(patched, namespace="team-a", namespace_selected=True)
    assert not decision.inject and "already has a vpipe-proxy container" in decision.reason
    native, _ = injected(make_pod(), sidecar=SidecarSettings(native_sidecar=True))
    assert not mutation.decide(native, namespace="team-a", namespace_selected=True).inject


@pytest.mark.parametrize("spec", [
    {"volumes": [{"name": "vpipe-config", "emptyDir": {}}]},
    {"containers": [{"name": "app", "image": "a", "ports": [{"name": "vpipe-http",
                                                             "containerPort": 1}]}]},
])
def test_conflicting_names_give_no_patch_and_a_warning(spec: dict[str, Any]) -> None:
    result = mutation.mutate(make_pod(**spec), sidecar=SIDECAR)
    assert result.patch == ()
    assert result.warnings[0].startswith("sidecar not injected: ")


def test_mutate_does_not_touch_its_input() -> None:
    pod = make_pod(annotations={"a": "b"})
    before = copy.deepcopy(pod)
    mutation.mutate(pod, sidecar=SIDECAR, secrets=("x",))
    assert pod == before


# --- decide ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("annotations", "labels", "selected", "inject"), [
    ({"vpipe.io/inject": "true"}, None, False, True),
    ({"vpipe.io/inject": "True "}, None, False, True),
    (None, {"vpipe.io/inject": "true"}, False, True),
    (None, None, True, True),
    (None, None, False, False),
    ({"vpipe.io/inject": "false"}, None, True, False),
    (None, {"vpipe.io/inject": "false"}, True, False),
    ({"vpipe.io/inject": "false"}, {"vpipe.io/inject": "true"}, False, False),  # annotation wins
    ({"other": "x"}, None, False, False),
])
def test_decide(annotations: dict[str, str] | None, labels: dict[str, str] | None, selected: bool,
                inject: bool) -> None:
    pod = make_pod(annotations=annotations, labels=labels)
    decision = mutation.decide(pod, namespace="team-a", namespace_selected=selected)
    assert decision.inject is inject, decision.reason
    assert not decision.warn


def test_operator_namespace_is_skipped() -> None:
    pod = make_pod(annotations={"vpipe.io/inject": "true"})
    decision = mutation.decide(pod, namespace="vpipe-system", namespace_selected=True,
                               skip_namespace="vpipe-system")
    assert not decision.inject and "operator's own" in decision.reason


def test_host_network_pod_is_skipped_with_a_warning() -> None:
    pod = make_pod(annotations={"vpipe.io/inject": "true"}, hostNetwork=True)
    decision = mutation.decide(pod, namespace="team-a", namespace_selected=False)
    assert not decision.inject and decision.warn and "hostNetwork" in decision.reason


def test_neither_true_nor_false_is_skipped_with_a_warning() -> None:
    pod = make_pod(annotations={"vpipe.io/inject": "yes"})
    decision = mutation.decide(pod, namespace="team-a", namespace_selected=True)
    assert not decision.inject and decision.warn and "'yes'" in decision.reason


def test_strange_pod_shapes_do_not_raise() -> None:
    for pod in ({}, {"metadata": None, "spec": None}, {"spec": {"containers": None}}):
        assert not mutation.decide(pod, namespace="n", namespace_selected=False).inject
        mutation.mutate(pod, sidecar=SIDECAR)  # the API server never sends these; no exception
