"""Settings of the sidecar-injection webhook: one frozen object, built once from an environment.

`WebhookSettings.from_environ(os.environ)` is the only place that reads `VPIPE_WEBHOOK_*`
variables; the server and the pure mutation receive the object (or its `sidecar` part)
explicitly, so tests pass plain dicts. An unusable value raises `SettingsError` naming the
variable and what it needs to be.

`SidecarSettings` is what the mutation needs to build the `vpipe-proxy` container; it holds no
I/O concerns (ports the webhook listens on, certificates) so `mutation` stays pure.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Final, TypeVar

from vpipe_operator.errors import SettingsError
from vpipe_operator.settings import parse_boolean, parse_positive_seconds, parse_seconds, parse_text

PREFIX: Final = "VPIPE_WEBHOOK_"
T = TypeVar("T")

# Kubernetes resource quantities: "50m", "0.5", "64Mi", "1G", "1e3" (apimachinery's grammar).
QUANTITY: Final = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|[munkMGTPE])?$")


@dataclasses.dataclass(frozen=True)
class SidecarSettings:
    """The defaults of the injected `vpipe-proxy` container (pod annotations override some)."""

    image: str = "ghcr.io/vpipe/vpipe-proxy:0.1.0"
    """VPIPE_WEBHOOK_PROXY_IMAGE; the annotation `vpipe.io/proxy-image` overrides it per pod."""

    image_pull_policy: str = "IfNotPresent"
    """VPIPE_WEBHOOK_PROXY_PULL_POLICY: Always, IfNotPresent or Never."""

    cpu_request: str = "50m"
    """VPIPE_WEBHOOK_PROXY_CPU_REQUEST; annotation `vpipe.io/proxy-cpu-request`."""

    memory_request: str = "64Mi"
    """VPIPE_WEBHOOK_PROXY_MEMORY_REQUEST; annotation `vpipe.io/proxy-memory-request`."""

    cpu_limit: str = "500m"
    """VPIPE_WEBHOOK_PROXY_CPU_LIMIT (`none`: no limit); annotation `vpipe.io/proxy-cpu-limit`."""

    memory_limit: str = "256Mi"
    """VPIPE_WEBHOOK_PROXY_MEMORY_LIMIT (`none`: no limit); annotation
    `vpipe.io/proxy-memory-limit`."""

    port: int = 8080
    """VPIPE_WEBHOOK_PROXY_PORT: client API port on 127.0.0.1; annotation `vpipe.io/proxy-port`
    moves it for apps that already listen on 8080."""

    admin_port: int = 9090
    """VPIPE_WEBHOOK_PROXY_ADMIN_PORT; annotation `vpipe.io/proxy-admin-port`."""

    native_sidecar: bool = False
    """VPIPE_WEBHOOK_NATIVE_SIDECAR (true/false): inject the proxy as a Kubernetes native sidecar
    (an init container with restartPolicy Always, Kubernetes >= 1.29): it starts before the app
    containers and stops after them, so Jobs complete. Off by default for older clusters."""

    config_dir: str = "/etc/vpipe"
    """Where the vpipe-config ConfigMap is mounted (`vpipe serve --config-dir`)."""

    secrets_dir: str = "/var/run/vpipe/secrets"
    """Where referenced Secrets are mounted, as <dir>/<secret>/<key> (VPIPE_SECRETS_DIR)."""


@dataclasses.dataclass(frozen=True)
class WebhookSettings:
    """Everything the webhook process needs besides API credentials."""

    host: str = "0.0.0.0"
    """VPIPE_WEBHOOK_HOST: address the HTTPS server binds to (the Service reaches the pod IP)."""

    port: int = 8443
    """VPIPE_WEBHOOK_PORT: HTTPS port of the AdmissionReview endpoint and /healthz."""

    cert_file: str = "/var/run/vpipe/webhook-tls/tls.crt"
    """VPIPE_WEBHOOK_CERT_FILE: serving certificate (PEM, chain allowed)."""

    key_file: str = "/var/run/vpipe/webhook-tls/tls.key"
    """VPIPE_WEBHOOK_KEY_FILE: its private key (PEM)."""

    cert_reload_interval: float = 60.0
    """VPIPE_WEBHOOK_CERT_RELOAD_INTERVAL, seconds: how often the certificate files are checked;
    a rotated certificate (cert-manager) is used for new connections without a restart."""

    lookup_timeout: float = 2.0
    """VPIPE_WEBHOOK_LOOKUP_TIMEOUT, seconds: reading a namespace's vpipe-config ConfigMap. Kept
    well under the webhook's 5 s timeoutSeconds so a slow API server yields an answer (allow,
    no patch, warning) rather than the API server giving up on us."""

    shutdown_delay: float = 5.0
    """VPIPE_WEBHOOK_SHUTDOWN_DELAY, seconds: after SIGTERM, keep answering this long before
    closing. The API server learns that the pod is going only when its endpoint is removed; a
    review sent to a closed port meets failurePolicy Ignore and the pod starts uninjected."""

    namespace: str = ""
    """VPIPE_WEBHOOK_NAMESPACE: the operator's own namespace, never injected (the chart sets it
    from the pod's namespace). Empty: no namespace is skipped by name."""

    sidecar: SidecarSettings = dataclasses.field(default_factory=SidecarSettings)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WebhookSettings:
        """Settings from `environ`; unset or empty variables keep the defaults."""
        d, s = cls(), SidecarSettings()

        def get(name: str, parse: Callable[[str, str], T], default: T) -> T:
            raw = environ.get(PREFIX + name, "").strip()
            return parse(PREFIX + name, raw) if raw else default

        sidecar = SidecarSettings(
            image=get("PROXY_IMAGE", parse_text, s.image),
            image_pull_policy=get("PROXY_PULL_POLICY", _pull_policy, s.image_pull_policy),
            cpu_request=get("PROXY_CPU_REQUEST", quantity, s.cpu_request),
            memory_request=get("PROXY_MEMORY_REQUEST", quantity, s.memory_request),
            cpu_limit=get("PROXY_CPU_LIMIT", optional_quantity, s.cpu_limit),
            memory_limit=get("PROXY_MEMORY_LIMIT", optional_quantity, s.memory_limit),
            port=get("PROXY_PORT", port, s.port),
            admin_port=get("PROXY_ADMIN_PORT", port, s.admin_port),
            native_sidecar=get("NATIVE_SIDECAR", parse_boolean, s.native_sidecar),
        )
        if sidecar.port == sidecar.admin_port:
            raise SettingsError(
                f"Invalid {PREFIX}PROXY_PORT and {PREFIX}PROXY_ADMIN_PORT: both are "
                f"{sidecar.port}. Need to be two different ports"
            )
        return cls(
            host=get("HOST", parse_text, d.host),
            port=get("PORT", port, d.port),
            cert_file=get("CERT_FILE", parse_text, d.cert_file),
            key_file=get("KEY_FILE", parse_text, d.key_file),
            cert_reload_interval=get("CERT_RELOAD_INTERVAL", parse_positive_seconds,
                                     d.cert_reload_interval),
            lookup_timeout=get("LOOKUP_TIMEOUT", parse_positive_seconds, d.lookup_timeout),
            shutdown_delay=get("SHUTDOWN_DELAY", parse_seconds, d.shutdown_delay),
            namespace=get("NAMESPACE", parse_text, d.namespace),
            sidecar=sidecar,
        )


def quantity(name: str, raw: str) -> str:
    """A Kubernetes resource quantity, unchanged; `name` is the variable or annotation."""
    if not QUANTITY.match(raw):
        raise SettingsError(
            f"Invalid {name}={raw!r}. Needs to be a Kubernetes quantity (e.g. 50m, 0.5, 64Mi)"
        )
    return raw


def port(name: str, raw: str) -> int:
    """A TCP port number, 1..65535."""
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise SettingsError(f"Invalid {name}={raw!r}. Needs to be a port number (1-65535)")
    return value


def optional_quantity(name: str, raw: str) -> str:
    """A quantity, or "" for `none` (no limit)."""
    return "" if raw.lower() == "none" else quantity(name, raw)


def _pull_policy(name: str, raw: str) -> str:
    if raw not in ("Always", "IfNotPresent", "Never"):
        raise SettingsError(f"Invalid {name}={raw!r}. Needs to be Always, IfNotPresent or Never")
    return raw
