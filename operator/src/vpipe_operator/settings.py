"""The operator's settings: one frozen object per process, built once from an environment mapping.

`OperatorSettings.from_environ(os.environ)` is the only place that reads environment variables;
everything else receives the object explicitly (tests pass a plain dict). Every field says its
unit, its default and why it exists; an unusable value raises `SettingsError` naming the variable.
Command-line flags (see `main`) override the environment through `dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TypeVar

from vpipe_operator.errors import SettingsError

PREFIX = "VPIPE_OPERATOR_"
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = ()
    """VPIPE_OPERATOR_NAMESPACES: comma-separated namespaces to serve; empty (default) = all."""

    debounce: float = 0.5
    """VPIPE_OPERATOR_DEBOUNCE, seconds: a namespace is reconciled once it has been quiet this
    long, so a `kubectl apply` of 1,000 Routes causes one reconcile, not 1,000."""

    max_delay: float = 5.0
    """VPIPE_OPERATOR_MAX_DELAY, seconds: a stream of changes postpones a reconcile at most this
    long (a namespace under constant churn still converges)."""

    secret_recheck: float = 30.0
    """VPIPE_OPERATOR_SECRET_RECHECK, seconds: while a referenced Secret is missing, look again
    this often. Secrets are never watched (that would need list/watch on every Secret's data)."""

    concurrency: int = 4
    """VPIPE_OPERATOR_CONCURRENCY: namespaces reconciled at the same time."""

    write_concurrency: int = 16
    """VPIPE_OPERATOR_WRITE_CONCURRENCY: status patches and Events in flight per reconcile."""

    max_events: int = 50
    """VPIPE_OPERATOR_MAX_EVENTS: Events posted per reconcile at most (a namespace-wide rejection
    of thousands of resources must not flood the API server; conditions still say it all)."""

    backoff: float = 1.0
    """VPIPE_OPERATOR_BACKOFF, seconds: first retry delay after an API error; doubles each time."""

    backoff_max: float = 60.0
    """VPIPE_OPERATOR_BACKOFF_MAX, seconds: longest retry delay (also used for 401/403/404)."""

    request_timeout: float = 30.0
    """VPIPE_OPERATOR_REQUEST_TIMEOUT, seconds: one non-watch API request, ours and kopf's."""

    watch_server_timeout: float = 300.0
    """VPIPE_OPERATOR_WATCH_SERVER_TIMEOUT, seconds: the API server ends each watch after this;
    kopf then resumes. Bounded watches avoid kopf's known silent-watch hang, where a connection
    dropped by a load balancer is never noticed and events stop arriving."""

    watch_client_timeout: float = 330.0
    """VPIPE_OPERATOR_WATCH_CLIENT_TIMEOUT, seconds: client-side cap of one watch request; a bit
    longer than the server timeout so the server normally ends it cleanly."""

    watch_connect_timeout: float = 10.0
    """VPIPE_OPERATOR_WATCH_CONNECT_TIMEOUT, seconds: to open a watch connection."""

    peering: str = ""
    """VPIPE_OPERATOR_PEERING: kopf peering object name for several replicas (one active);
    empty (default) = standalone. Needs kopf's peering CRDs and that object (docs/operator.md)."""

    priority: int = 0
    """VPIPE_OPERATOR_PRIORITY: kopf peering priority; the highest-priority replica is active."""

    liveness: str = ""
    """VPIPE_OPERATOR_LIVENESS: kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz;
    empty (default) = none."""

    scanning: bool = True
    """VPIPE_OPERATOR_SCANNING (true/false): kopf observes CRDs and namespaces at runtime, so
    CRDs installed after the operator, and namespaces created later, are picked up. Needs
    list/watch on customresourcedefinitions and namespaces; false drops that need, and kopf then
    serves only the CRDs found at startup and the listed namespaces as given."""

    shutdown_timeout: float = 10.0
    """VPIPE_OPERATOR_SHUTDOWN_TIMEOUT, seconds: on SIGTERM, in-flight reconciles get this long
    to finish their writes before they are cancelled."""

    sidecar_gate: bool = True
    """VPIPE_OPERATOR_SIDECAR_GATE (true/false): a canary's weight rises only once every running
    proxy (pods labelled vpipe.io/proxy) serves the revision in the ConfigMap, asked on its admin
    port (/readyz); Routes show "loaded by N of M sidecars". Needs list/watch on pods and network
    access from the operator to the proxies' admin ports; false turns the gate off."""

    sidecar_timeout: float = 2.0
    """VPIPE_OPERATOR_SIDECAR_TIMEOUT, seconds: one proxy's /readyz answer; no answer counts as
    not loaded."""

    rollout_poll: float = 2.0
    """VPIPE_OPERATOR_ROLLOUT_POLL, seconds: how often a namespace whose proxies lag behind its
    ConfigMap is asked again while it has canaries."""

    prometheus_url: str = ""
    """VPIPE_OPERATOR_PROMETHEUS_URL: Prometheus base URL for canary analysis, e.g.
    http://prometheus-operated.monitoring:9090; a Route's spec.canary.analysis.prometheus wins."""

    analysis_timeout: float = 10.0
    """VPIPE_OPERATOR_ANALYSIS_TIMEOUT, seconds: one analysis query."""

    analysis_namespace_label: str = "namespace"
    """VPIPE_OPERATOR_ANALYSIS_NAMESPACE_LABEL: the label that carries the Kubernetes namespace
    in Prometheus, added to the built-in analysis queries; `none` when there is none."""

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> OperatorSettings:
        """Settings from `environ`; unset or empty variables keep the defaults."""
        d = cls()

        def get(name: str, parse: Callable[[str, str], T], default: T) -> T:
            raw = environ.get(PREFIX + name, "").strip()
            return parse(PREFIX + name, raw) if raw else default

        return cls(
            namespaces=get("NAMESPACES", parse_namespaces, d.namespaces),
            debounce=get("DEBOUNCE", parse_seconds, d.debounce),
            max_delay=get("MAX_DELAY", parse_seconds, d.max_delay),
            secret_recheck=get("SECRET_RECHECK", parse_positive_seconds, d.secret_recheck),
            concurrency=get("CONCURRENCY", _positive_int, d.concurrency),
            write_concurrency=get("WRITE_CONCURRENCY", _positive_int, d.write_concurrency),
            max_events=get("MAX_EVENTS", _count, d.max_events),
            backoff=get("BACKOFF", parse_positive_seconds, d.backoff),
            backoff_max=get("BACKOFF_MAX", parse_positive_seconds, d.backoff_max),
            request_timeout=get("REQUEST_TIMEOUT", parse_positive_seconds, d.request_timeout),
            watch_server_timeout=get("WATCH_SERVER_TIMEOUT", parse_positive_seconds,
                                     d.watch_server_timeout),
            watch_client_timeout=get("WATCH_CLIENT_TIMEOUT", parse_positive_seconds,
                                     d.watch_client_timeout),
            watch_connect_timeout=get("WATCH_CONNECT_TIMEOUT", parse_positive_seconds,
                                      d.watch_connect_timeout),
            peering=get("PEERING", parse_text, d.peering),
            priority=get("PRIORITY", _integer, d.priority),
            liveness=get("LIVENESS", parse_text, d.liveness),
            scanning=get("SCANNING", parse_boolean, d.scanning),
            shutdown_timeout=get("SHUTDOWN_TIMEOUT", parse_seconds, d.shutdown_timeout),
            sidecar_gate=get("SIDECAR_GATE", parse_boolean, d.sidecar_gate),
            sidecar_timeout=get("SIDECAR_TIMEOUT", parse_positive_seconds, d.sidecar_timeout),
            rollout_poll=get("ROLLOUT_POLL", parse_positive_seconds, d.rollout_poll),
            prometheus_url=get("PROMETHEUS_URL", _url, d.prometheus_url),
            analysis_timeout=get("ANALYSIS_TIMEOUT", parse_positive_seconds,
                                 d.analysis_timeout),
            analysis_namespace_label=get("ANALYSIS_NAMESPACE_LABEL", _label_name,
                                         d.analysis_namespace_label),
        )


def parse_namespaces(name: str, raw: str) -> tuple[str, ...]:
    """Namespaces from a comma-separated list; `name` is the variable or flag, for messages."""
    items = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    for item in items:
        if not item.replace("-", "").isalnum() or item != item.lower() or len(item) > 63:
            raise SettingsError(
                f"Invalid {name}={raw!r}: {item!r} is not a namespace name. "
                "Needs to be a comma-separated list of namespaces (e.g. team-a,team-b), "
                "or empty for all namespaces"
            )
    return items


# Parsers for VPIPE_* values, shared with the webhook's settings: (variable name, raw) -> value,
# raising SettingsError that names the variable and what it needs to be.


def parse_text(name: str, raw: str) -> str:
    return raw


def parse_boolean(name: str, raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"Invalid {name}={raw!r}. Needs to be true or false")


def _integer(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"Invalid {name}={raw!r}. Needs to be an integer") from None


def _positive_int(name: str, raw: str) -> int:
    value = _integer(name, raw)
    if value < 1:
        raise SettingsError(f"Invalid {name}={raw!r}. Needs to be a positive integer")
    return value


def _count(name: str, raw: str) -> int:
    value = _integer(name, raw)
    if value < 0:
        raise SettingsError(f"Invalid {name}={raw!r}. Needs to be zero or a positive integer")
    return value


def parse_seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"Invalid {name}={raw!r}. Needs to be a number of seconds") from None
    if value < 0 or value != value or value == float("inf"):
        raise SettingsError(f"Invalid {name}={raw!r}. Needs to be zero or more seconds")
    return value


def parse_positive_seconds(name: str, raw: str) -> float:
    value = parse_seconds(name, raw)
    if value <= 0:
        raise SettingsError(f"Invalid {name}={raw!r}. Needs to be a positive number of seconds")
    return value


def _url(name: str, raw: str) -> str:
    if not raw.startswith(("http://", "https://")) or any(c.isspace() for c in raw):
        raise SettingsError(f"{name}={raw!r} is not an http(s) URL; e.g. "
                            "http://prometheus.monitoring:9090")
    return raw.rstrip("/")


def _label_name(name: str, raw: str) -> str:
    if raw.lower() == "none":
        return ""
    if not raw.replace("_", "a").isalnum() or raw[0].isdigit():
        raise SettingsError(f"{name}={raw!r} is not a Prometheus label name (letters, digits "
                            "and _, not starting with a digit), nor `none`")
    return raw
