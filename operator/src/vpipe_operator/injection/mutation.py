"""The sidecar injection itself: a Pod and settings in, a JSONPatch out. Pure: no I/O, no clock.

Two steps, so the server reads the API only for pods that get a sidecar:
- `decide(pod, ...)`: should this pod get the proxy? (opt-in/opt-out, idempotence, the
  operator's own namespace, hostNetwork);
- `mutate(pod, sidecar, secrets)`: the RFC 6902 patch that adds the `vpipe-proxy` container,
  its volumes (the `vpipe-config` ConfigMap and each referenced Secret), the base-URL env vars
  of the app containers, and a status annotation.

Neither step raises for a strange pod: what cannot be honoured (a bad annotation, a volume name
already taken) becomes a warning, and a pod that cannot be injected safely gets no patch. Only
"add" operations are emitted, each against a path that exists, so the patch applies to the pod
exactly as the API server sent it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal, TypedDict

from vpipe_operator.errors import SettingsError
from vpipe_operator.injection import settings as settings_mod
from vpipe_operator.injection.settings import SidecarSettings

DEFAULT_GRACE_SECONDS: Final = 30  # Kubernetes' terminationGracePeriodSeconds default
SHUTDOWN_MARGIN: Final = 5  # seconds between the proxy's drain deadline and SIGKILL
INJECT: Final = "vpipe.io/inject"  # annotation or label: "true" opts in, "false" opts out
PROXY_IMAGE: Final = "vpipe.io/proxy-image"
PROXY_CPU_REQUEST: Final = "vpipe.io/proxy-cpu-request"
PROXY_CPU_LIMIT: Final = "vpipe.io/proxy-cpu-limit"
PROXY_MEMORY_REQUEST: Final = "vpipe.io/proxy-memory-request"
PROXY_MEMORY_LIMIT: Final = "vpipe.io/proxy-memory-limit"
PROXY_PORT: Final = "vpipe.io/proxy-port"
PROXY_ADMIN_PORT: Final = "vpipe.io/proxy-admin-port"
NATIVE_SIDECAR: Final = "vpipe.io/native-sidecar"
STATUS: Final = "vpipe.io/sidecar-status"  # written by the injection: what was injected
PROXY_LABEL: Final = "vpipe.io/proxy"  # vpipe_operator.sidecars.LABEL

CONTAINER: Final = "vpipe-proxy"
CONFIG_VOLUME: Final = "vpipe-config"
CONFIGMAP: Final = "vpipe-config"  # vpipe_api.document.CONFIGMAP_NAME
SECRET_VOLUME_PREFIX: Final = "vpipe-secret-"
PORT_NAMES: Final = ("vpipe-http", "vpipe-admin")
RUN_AS: Final = 65532
BASE_URL_ENV: Final = ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL")

_DNS_SUBDOMAIN: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SUFFIXES: Final[dict[str, int | Decimal]] = {
    "": 1, "m": Decimal("0.001"), "u": Decimal("1e-6"), "n": Decimal("1e-9"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


class PatchOp(TypedDict):
    """One RFC 6902 operation; the injection only ever adds."""

    op: Literal["add"]
    path: str
    value: Any


@dataclasses.dataclass(frozen=True)
class Decision:
    inject: bool
    reason: str
    warn: bool = False  # tell whoever created the pod (an AdmissionReview warning)


@dataclasses.dataclass(frozen=True)
class Mutation:
    patch: tuple[PatchOp, ...]
    warnings: tuple[str, ...] = ()


def decide(pod: Mapping[str, Any], *, namespace: str, namespace_selected: bool,
           skip_namespace: str = "") -> Decision:
    """Whether `pod` gets a sidecar.

    `namespace_selected`: the pod's namespace is labelled `vpipe.io/inject=enabled` (the chart
    sends those pods to a path of their own), so every pod is injected unless it opts out.
    Otherwise only pods that opt in with the annotation (or label) `vpipe.io/inject: "true"`.
    """
    meta = _mapping(pod.get("metadata"))
    spec = _mapping(pod.get("spec"))
    if skip_namespace and namespace == skip_namespace:
        return Decision(False, f"namespace {namespace} is the vpipe operator's own")
    if any(c.get("name") == CONTAINER for c in _containers(spec)):
        return Decision(False, f"the pod already has a {CONTAINER} container")
    raw = _mapping(meta.get("annotations")).get(INJECT, _mapping(meta.get("labels")).get(INJECT))
    wish = str(raw).strip().lower() if raw is not None else None
    if wish == "false":
        return Decision(False, f'opted out with {INJECT}: "false"')
    if wish not in (None, "true"):
        return Decision(False, f'{INJECT}: {raw!r} is neither "true" nor "false"; not injected',
                        warn=True)
    if wish is None and not namespace_selected:
        return Decision(False, f'not opted in (set the annotation {INJECT}: "true")')
    if spec.get("hostNetwork"):
        return Decision(False, "hostNetwork pods are not injected: the proxy would bind the "
                        "node's ports", warn=True)
    return Decision(True, f'{INJECT}: "true"' if wish else f"namespace {namespace} is selected")


def mutate(pod: Mapping[str, Any], *, sidecar: SidecarSettings,
           secrets: Sequence[str] = ()) -> Mutation:
    """The patch that injects the proxy into `pod`, mounting `secrets` (Secret names)."""
    meta = _mapping(pod.get("metadata"))
    spec = _mapping(pod.get("spec"))
    annotations = _mapping(meta.get("annotations"))
    sidecar, warnings = apply_overrides(sidecar, annotations)
    names = sorted({s for s in secrets if _valid_secret(s, warnings)})
    volumes = [_config_volume()] + [_secret_volume(name) for name in names]

    conflict = _conflict(spec, volumes)
    if conflict:
        return Mutation((), (*warnings, f"sidecar not injected: {conflict}"))
    for container in map(_mapping, _list(spec.get("containers"))):
        for port in _list(container.get("ports")):
            if _mapping(port).get("containerPort") in (sidecar.port, sidecar.admin_port):
                warnings.append(
                    f"container {container.get('name')} declares port {port['containerPort']}, "
                    f"which the proxy listens on; set {PROXY_PORT} / {PROXY_ADMIN_PORT}")

    patch: list[PatchOp] = []
    for index, container in enumerate(_list(spec.get("containers"))):
        patch += _env_ops(f"/spec/containers/{index}", _mapping(container), _app_env(sidecar))
    patch += _append_ops(spec, "volumes", volumes)
    proxy = proxy_container(sidecar, names, shutdown_timeout(spec.get("terminationGracePeriodSeconds")))
    if sidecar.native_sidecar:
        # First init container: it starts before the others and the app, and stops after.
        patch.append(_add("/spec/initContainers/0", proxy) if _list(spec.get("initContainers"))
                     else _add("/spec/initContainers", [proxy]))
    else:
        patch += _append_ops(spec, "containers", [proxy])
    status = json.dumps({"image": sidecar.image, "secrets": names,
                         "nativeSidecar": sidecar.native_sidecar}, sort_keys=True)
    if isinstance(meta.get("annotations"), Mapping):
        patch.append(_add("/metadata/annotations/" + _escape(STATUS), status))
    else:
        patch.append(_add("/metadata/annotations", {STATUS: status}))
    # The operator finds the proxies by this label to ask which config revision each serves.
    if isinstance(meta.get("labels"), Mapping):
        patch.append(_add("/metadata/labels/" + _escape(PROXY_LABEL), "sidecar"))
    else:
        patch.append(_add("/metadata/labels", {PROXY_LABEL: "sidecar"}))
    return Mutation(tuple(patch), tuple(warnings))


def apply_overrides(sidecar: SidecarSettings,
                    annotations: Mapping[str, Any]) -> tuple[SidecarSettings, list[str]]:
    """`sidecar` with the pod's `vpipe.io/proxy-*` annotations applied; bad ones are ignored,
    each with a warning naming the annotation and what it needs to be."""
    warnings: list[str] = []
    changes: dict[str, Any] = {}
    parsers = {
        PROXY_CPU_REQUEST: ("cpu_request", settings_mod.quantity),
        PROXY_MEMORY_REQUEST: ("memory_request", settings_mod.quantity),
        PROXY_CPU_LIMIT: ("cpu_limit", settings_mod.optional_quantity),
        PROXY_MEMORY_LIMIT: ("memory_limit", settings_mod.optional_quantity),
        PROXY_PORT: ("port", settings_mod.port),
        PROXY_ADMIN_PORT: ("admin_port", settings_mod.port),
    }
    for annotation, (field, parse) in parsers.items():
        raw = annotations.get(annotation)
        if raw is None:
            continue
        try:
            changes[field] = parse(annotation, str(raw).strip())
        except SettingsError as e:
            warnings.append(f"{e}; ignored")
    image = annotations.get(PROXY_IMAGE)
    if image is not None:
        if str(image).strip() and not any(ch.isspace() for ch in str(image).strip()):
            changes["image"] = str(image).strip()
        else:
            warnings.append(f"Invalid {PROXY_IMAGE}={image!r}. Needs to be an image reference; "
                            "ignored")
    native = annotations.get(NATIVE_SIDECAR)
    if native is not None:
        if str(native).strip().lower() in ("true", "false"):
            changes["native_sidecar"] = str(native).strip().lower() == "true"
        else:
            warnings.append(f"Invalid {NATIVE_SIDECAR}={native!r}. Needs to be true or false; "
                            "ignored")
    result = dataclasses.replace(sidecar, **changes)
    if result.port == result.admin_port:
        warnings.append(f"{PROXY_PORT} and {PROXY_ADMIN_PORT} are both {result.port}; "
                        "the defaults are used")
        result = dataclasses.replace(result, port=sidecar.port, admin_port=sidecar.admin_port)
    for resource in ("cpu", "memory"):
        request, limit = getattr(result, f"{resource}_request"), getattr(result, f"{resource}_limit")
        if limit and _amount(request) > _amount(limit):
            warnings.append(f"the proxy's {resource} request {request} exceeds its limit {limit}; "
                            f"the limit is raised to {request}")
            result = dataclasses.replace(result, **{f"{resource}_limit": request})
    return result, warnings


def shutdown_timeout(grace: Any) -> int:
    """VPIPE_SHUTDOWN_TIMEOUT for a pod whose terminationGracePeriodSeconds is `grace`: the
    proxy's whole drain ends SHUTDOWN_MARGIN seconds before the kubelet's SIGKILL (half the
    period when it is short), so in-flight requests finish or are cut cleanly, never killed."""
    seconds = grace if isinstance(grace, int) and not isinstance(grace, bool) and grace >= 0 \
        else DEFAULT_GRACE_SECONDS
    return seconds - SHUTDOWN_MARGIN if seconds > 2 * SHUTDOWN_MARGIN else seconds // 2


def proxy_container(sidecar: SidecarSettings, secrets: Sequence[str],
                    shutdown_seconds: int = 25) -> dict[str, Any]:
    """The `vpipe-proxy` container spec.

    The client port binds 127.0.0.1: it spends the pod's upstream credentials and must not be
    reachable from other pods. The admin port (health, metrics, redacted debug views) binds the
    pod IP so kubelet's httpGet probes and Prometheus reach it.
    """
    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": sidecar.cpu_request, "memory": sidecar.memory_request}}
    limits = {k: v for k, v in (("cpu", sidecar.cpu_limit), ("memory", sidecar.memory_limit)) if v}
    if limits:
        resources["limits"] = limits
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": sidecar.image,
        "imagePullPolicy": sidecar.image_pull_policy,
        "args": ["serve", "--config-dir", sidecar.config_dir],
        "env": [
            {"name": "VPIPE_HOST", "value": "127.0.0.1"},
            {"name": "VPIPE_ADMIN_HOST", "value": "0.0.0.0"},
            {"name": "VPIPE_PORT", "value": str(sidecar.port)},
            {"name": "VPIPE_ADMIN_PORT", "value": str(sidecar.admin_port)},
            {"name": "VPIPE_SECRETS_DIR", "value": sidecar.secrets_dir},
            {"name": "VPIPE_SHUTDOWN_TIMEOUT", "value": str(shutdown_seconds)},
        ],
        "ports": [
            {"name": PORT_NAMES[0], "containerPort": sidecar.port, "protocol": "TCP"},
            {"name": PORT_NAMES[1], "containerPort": sidecar.admin_port, "protocol": "TCP"},
        ],
        "resources": resources,
        "readinessProbe": _probe(sidecar.admin_port, "/readyz", period=5, failures=3),
        "livenessProbe": _probe(sidecar.admin_port, "/healthz", period=10, failures=3),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": CONFIG_VOLUME, "mountPath": sidecar.config_dir, "readOnly": True},
            *({"name": secret_volume_name(s), "mountPath": f"{sidecar.secrets_dir}/{s}",
               "readOnly": True} for s in secrets),
        ],
        # A config that does not load ends the proxy; its last log lines then show in
        # `kubectl describe pod` as the termination message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if sidecar.native_sidecar:
        container["restartPolicy"] = "Always"
        # The app containers start once this passes: the first config is loaded and warm.
        container["startupProbe"] = _probe(sidecar.admin_port, "/readyz", period=1, failures=120)
    return container


def secret_volume_name(secret: str) -> str:
    """A volume name (DNS label, <= 63 chars) for Secret `secret` (a DNS subdomain, <= 253)."""
    name = SECRET_VOLUME_PREFIX + secret
    if len(name) <= 63 and "." not in secret:
        return name
    digest = hashlib.sha256(secret.encode()).hexdigest()[:8]
    stem = secret.replace(".", "-")[: 63 - len(SECRET_VOLUME_PREFIX) - 9].rstrip("-")
    return f"{SECRET_VOLUME_PREFIX}{stem}-{digest}"


def _probe(admin_port: int, path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": admin_port}, "periodSeconds": period,
            "timeoutSeconds": 3, "failureThreshold": failures}


def _app_env(sidecar: SidecarSettings) -> list[dict[str, str]]:
    base = f"http://127.0.0.1:{sidecar.port}"
    return [{"name": BASE_URL_ENV[0], "value": base + "/v1"},
            {"name": BASE_URL_ENV[1], "value": base}]


def _env_ops(path: str, container: Mapping[str, Any], env: list[dict[str, str]]) -> list[PatchOp]:
    """Add the `env` entries the container does not set itself (its own value wins)."""
    existing = _list(container.get("env"))
    taken = {_mapping(e).get("name") for e in existing}
    missing = [e for e in env if e["name"] not in taken]
    if not missing:
        return []
    if not isinstance(container.get("env"), list):
        return [_add(f"{path}/env", missing)]
    return [_add(f"{path}/env/-", e) for e in missing]


def _append_ops(spec: Mapping[str, Any], field: str, items: list[dict[str, Any]]) -> list[PatchOp]:
    if not items:
        return []
    if not isinstance(spec.get(field), list):
        return [_add(f"/spec/{field}", items)]
    return [_add(f"/spec/{field}/-", item) for item in items]


def _conflict(spec: Mapping[str, Any], volumes: list[dict[str, Any]]) -> str | None:
    """What in the pod already uses a name the sidecar needs, if anything."""
    existing = {_mapping(v).get("name") for v in _list(spec.get("volumes"))}
    for volume in volumes:
        if volume["name"] in existing:
            return f"the pod already has a volume named {volume['name']}"
    for container in _containers(spec):
        for port in _list(container.get("ports")):
            if _mapping(port).get("name") in PORT_NAMES:
                return f"container {container.get('name')} already names a port {port['name']}"
    return None


def _config_volume() -> dict[str, Any]:
    # optional: the pod is created even before the operator has written the namespace's config
    # (or when no Pipeline exists yet); the proxy then is not ready until the ConfigMap appears.
    return {"name": CONFIG_VOLUME, "configMap": {"name": CONFIGMAP, "optional": True}}


def _secret_volume(secret: str) -> dict[str, Any]:
    # optional: a missing Secret must not keep the app pod from starting; the provider that
    # needs it fails to load and the proxy's /readyz says which file is missing.
    return {"name": secret_volume_name(secret), "secret": {"secretName": secret, "optional": True}}


def _valid_secret(name: str, warnings: list[str]) -> bool:
    if len(name) <= 253 and _DNS_SUBDOMAIN.match(name):
        return True
    warnings.append(f"the namespace's config references Secret {name!r}, which is not a valid "
                    "Secret name; not mounted")
    return False


def _amount(quantity: str) -> Decimal:
    match = re.match(r"^([+]?[\d.]+(?:[eE][+-]?\d+)?)([a-zA-Z]*)$", quantity)
    try:
        if match and match.group(2) in _SUFFIXES:
            return Decimal(match.group(1)) * Decimal(_SUFFIXES[match.group(2)])
    except InvalidOperation:
        pass
    return Decimal(0)  # unparseable quantities are never "above" a limit here


def _containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [_mapping(c) for c in [*_list(spec.get("containers")), *_list(spec.get("initContainers"))]]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _add(path: str, value: Any) -> PatchOp:
    return {"op": "add", "path": path, "value": value}


def _escape(key: str) -> str:
    """A map key as a JSON Pointer token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")
