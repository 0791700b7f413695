"""Which proxies run which config revision: the gate a canary's weight waits behind. Pure.

Proxies do not write to the API server (a sidecar holds no credentials for it); they report the
revision they serve on their admin port (`/readyz`), which kubelet's probes and Prometheus
already reach. The operator finds them by the label `vpipe.io/proxy` (set by the injection
webhook on sidecars and by the chart on the gateway), asks each one, and counts. A canary's
weight rises only once every running proxy serves the revision in the ConfigMap, so no proxy
splits traffic by an older plan or lacks the canary's modules when its share arrives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Final

LABEL: Final = "vpipe.io/proxy"  # value: sidecar (injected) or gateway (the chart's Deployment)
LABEL_SELECTOR: Final = LABEL
CONTAINER: Final = "vpipe-proxy"
ADMIN_PORT_NAME: Final = "vpipe-admin"
DEFAULT_ADMIN_PORT: Final = 9090  # vpipe_proxy.settings.Settings.admin_port
NAMED: Final = 3  # lagging proxies named in a status message


@dataclasses.dataclass(frozen=True)
class Target:
    """One running proxy and where its admin port answers."""

    pod: str
    url: str  # e.g. http://10.1.2.3:9090


@dataclasses.dataclass(frozen=True)
class Observation:
    """What one proxy said: the revision it serves, or why it serves none we can tell."""

    pod: str
    revision: str | None
    problem: str | None = None  # unreachable, not ready, or its last reload failed


@dataclasses.dataclass(frozen=True)
class Report:
    """Every running proxy of a namespace, as observed in one reconcile."""

    observations: tuple[Observation, ...]
    error: str | None = None  # the proxies could not be listed at all

    @property
    def total(self) -> int:
        return len(self.observations)

    def loaded(self, revision: str | None) -> int:
        return sum(1 for o in self.observations if revision and o.revision == revision)

    def gate(self, revision: str | None) -> str | None:
        """Why the canary's weight may not rise yet, or None when every proxy serves `revision`."""
        if self.error is not None:
            return f"the proxies can be asked which config they serve ({self.error})"
        if not self.observations:
            return None  # nothing serves traffic; a proxy that starts loads the newest config
        if revision is None:
            return "no config is in the ConfigMap yet"
        if self.loaded(revision) == self.total:
            return None
        return f"revision {revision} is {self.describe(revision)}"

    def describe(self, revision: str | None) -> str:
        """'loaded by N of M sidecars', and which lag and why."""
        if self.error is not None:
            return f"unknown: {self.error}"
        text = f"loaded by {self.loaded(revision)} of {self.total} sidecars"
        lagging = [o for o in self.observations if not (revision and o.revision == revision)]
        if lagging:
            named = "; ".join(f"{o.pod}: {o.problem or f'serves revision {o.revision}'}"
                              for o in lagging[:NAMED])
            more = f"; and {len(lagging) - NAMED} more" if len(lagging) > NAMED else ""
            text += f" ({named}{more})"
        return text

    def status(self, revision: str | None) -> dict[str, Any]:
        """A Route's `status.sidecars`."""
        loaded = self.loaded(revision)
        return {"revision": revision, "loaded": loaded, "total": self.total,
                "summary": "?" if self.error else f"{loaded}/{self.total}",
                "message": self.describe(revision)}


def targets(pods: Sequence[Mapping[str, Any]]) -> list[Target]:
    """The proxies among `pods` that run now: not deleting, Running, with an IP, sorted by name.

    Pending pods do not count: they load the newest config when they start.
    """
    found = []
    for pod in pods:
        meta, spec, status = (_mapping(pod.get(key)) for key in ("metadata", "spec", "status"))
        name, ip = meta.get("name"), status.get("podIP")
        if (LABEL not in _mapping(meta.get("labels"))
                or meta.get("deletionTimestamp") or status.get("phase") != "Running"
                or not isinstance(name, str) or not isinstance(ip, str) or not ip):
            continue
        host = f"[{ip}]" if ":" in ip else ip
        found.append(Target(name, f"http://{host}:{admin_port(spec)}"))
    return sorted(found, key=lambda t: t.pod)


def admin_port(spec: Mapping[str, Any]) -> int:
    """The proxy's admin port: the injected container's `vpipe-admin` port, else the
    VPIPE_ADMIN_PORT of the container that sets it (the chart's gateway), else the default."""
    containers = [c for key in ("containers", "initContainers") for c in spec.get(key) or []
                  if isinstance(c, Mapping)]
    for container in containers:
        if container.get("name") != CONTAINER:
            continue
        for port in container.get("ports") or []:
            if isinstance(port, Mapping) and port.get("name") == ADMIN_PORT_NAME and \
                    isinstance(port.get("containerPort"), int):
                return int(port["containerPort"])
    for container in containers:
        for env in container.get("env") or []:
            if isinstance(env, Mapping) and env.get("name") == "VPIPE_ADMIN_PORT":
                value = str(env.get("value"))
                if value.isdigit():
                    return int(value)
    return DEFAULT_ADMIN_PORT


def observe(pod: str, status: int | None, body: Any, error: str | None = None) -> Observation:
    """Interpret one proxy's `/readyz` answer (`status` None: no answer, see `error`)."""
    if status is None:
        return Observation(pod, None, f"unreachable: {error or 'no answer'}")
    if not isinstance(body, Mapping):
        return Observation(pod, None, f"/readyz answered {status} without a JSON object")
    revision = body.get("revision")
    revision = revision if isinstance(revision, str) and revision else None
    last = _mapping(body.get("lastReload"))
    if last.get("ok") is False and last.get("error"):
        failed = last.get("revision") or "a newer config"
        return Observation(pod, revision, f"serves revision {revision or 'none'}; loading "
                           f"{failed} failed: {str(last['error'])[:200]}")
    if revision is None:
        return Observation(pod, None, "no config loaded yet")
    return Observation(pod, revision)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
