"""Process settings: one frozen object, built once from an environ mapping, passed explicitly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from vpipe_proxy.errors import VpipeProxyError


class SettingsError(VpipeProxyError):
    """An environment variable holds a value the proxy cannot use."""


@dataclass(frozen=True)
class Settings:
    """Every knob of the proxy process. Field docs give unit and default."""

    host: str = "127.0.0.1"
    """Address the client and admin ports bind to (VPIPE_HOST). Sidecars keep loopback."""
    admin_host: str = ""
    """Address of the admin port (VPIPE_ADMIN_HOST); empty: the same as VPIPE_HOST. A sidecar
    keeps the client port on loopback (it spends the pod's keys) and opens the admin port to
    the pod IP so kubelet probes and Prometheus reach it."""
    port: int = 8080
    """Client API port (VPIPE_PORT)."""
    admin_port: int = 9090
    """Admin port: /metrics, /healthz, /readyz, /debug (VPIPE_ADMIN_PORT)."""
    max_body_bytes: int = 8 * 1024 * 1024
    """Largest request body accepted, bytes (VPIPE_MAX_BODY_BYTES); larger gets 413."""
    client_body_timeout: float = 60.0
    """Seconds a client has to send a request body once its head arrived
    (VPIPE_CLIENT_BODY_TIMEOUT); slower gets 408. 0 turns the limit off."""
    client_idle_timeout: float = 30.0
    """Seconds a client connection may sit idle between requests, and also the time a new
    connection has to deliver a complete request head (VPIPE_CLIENT_IDLE_TIMEOUT); then it is
    closed, so a slowloris client cannot hold sockets."""
    max_client_connections: int = 4096
    """Client connections open at once on the client port (VPIPE_MAX_CLIENT_CONNECTIONS); one
    more is closed at once. Keep it below the process's file-descriptor limit."""
    max_upstream_body_bytes: int = 64 * 1024 * 1024
    """Largest non-streamed upstream reply read, bytes (VPIPE_MAX_UPSTREAM_BODY_BYTES); a larger
    one is a 502 and its connection is dropped."""
    max_sse_event_bytes: int = 4 * 1024 * 1024
    """Largest single server-sent event from an upstream, bytes (VPIPE_MAX_SSE_EVENT_BYTES); a
    larger one ends the stream with an in-band error (or a 502 before it started)."""
    secrets_dir: str = "/var/run/vpipe/secrets"
    """Where Secrets are mounted as <dir>/<secret>/<key> (VPIPE_SECRETS_DIR)."""
    poll_interval: float = 1.0
    """Seconds between checks of the config source for changes (VPIPE_POLL_INTERVAL)."""
    drain_timeout: float = 600.0
    """Seconds a replaced runtime may keep serving in-flight requests before its instances are
    closed anyway (VPIPE_DRAIN_TIMEOUT); bounds streams that never end."""
    shutdown_timeout: float = 30.0
    """Seconds the whole drain on SIGTERM may take: stop accepting, let in-flight requests and
    streams finish, close instances (VPIPE_SHUTDOWN_TIMEOUT); what still runs then is cut. Keep
    it below the pod's terminationGracePeriodSeconds (the webhook and chart do)."""
    allow_version_override: bool = True
    """Honour the x-vpipe-version: v1|v2 request header that forces a Route's version, for
    testing a canary before it takes traffic (VPIPE_ALLOW_VERSION_OVERRIDE)."""
    shadow_concurrency: int = 32
    """Shadow copies in flight at once (VPIPE_SHADOW_CONCURRENCY); beyond it a copy is dropped
    and counted, never queued in front of client traffic."""
    shadow_log_sample: float = 0.01
    """Share of shadow comparisons written to the diff log, 0..1 (VPIPE_SHADOW_LOG_SAMPLE)."""
    shadow_log_contents: bool = False
    """Put answer texts in the diff log (VPIPE_SHADOW_LOG_CONTENTS); off: lengths only."""
    thread_pins: int = 20_000
    """Responses-API threads (`previous_response_id` chains answered by a canary, and
    `conversation` ids) whose answering pipeline the proxy remembers, so a thread never moves to
    a provider that does not hold it (VPIPE_THREAD_PINS); least recently used forgotten first,
    ~170 bytes each; 0 turns pinning off."""
    wait_for_config: bool = False
    """Start and stay unready (503) until a first valid config arrives, instead of exiting
    (VPIPE_WAIT_FOR_CONFIG). `serve --config-dir/--kubernetes` turn it on: in a pod the
    ConfigMap may come after the pod; local mode fails fast."""
    warm_connections: int = 1
    """Upstream connections each provider opens before ready (VPIPE_WARM_CONNECTIONS); 0 skips
    warm-up, for upstreams that are not reachable at start."""
    workers: str = "1"
    """Proxy processes sharing the client port (VPIPE_WORKERS): a number, or `auto` for the
    CPU limit (cgroup cpu.max, else the CPUs this process may run on). 1 is one process as
    ever; more adds a supervisor that owns the admin port (see vpipe_proxy.workers)."""
    reuse_port: bool = False
    """Open the client port with SO_REUSEPORT so several processes share it
    (VPIPE_REUSE_PORT); `serve --workers` turns it on for its workers."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Read VPIPE_* variables; explicit overrides (CLI flags) win."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = f"VPIPE_{f.name.upper()}"
            if var not in environ:
                continue
            raw = environ[var]
            kind = type(getattr(cls, f.name))
            try:
                value = _parse_bool(var, raw) if kind is bool else kind(raw)
            except ValueError:
                raise SettingsError(
                    f"Invalid {var}={raw!r}. Needs to be a {kind.__name__}."
                ) from None
            if kind in (int, float) and value < 0:
                raise SettingsError(f"Invalid {var}={raw!r}. Needs to be zero or more.")
            values[f.name] = value
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)


def _parse_bool(var: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"Invalid {var}={raw!r}. Needs to be true or false.")
