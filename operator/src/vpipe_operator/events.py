"""Kubernetes Events (core/v1) for rejections: what is wrong with a resource and how to fix it.

Pure: `EventSpec` is what the reconcile decided to say; `manifest` turns it into the API object.
Events are only decided when a condition *changes*, so a steady state posts none, and an
operator restart does not repeat old news.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final, Literal

from vpipe_api import GROUP_VERSION

COMPONENT: Final = "vpipe-operator"
REPORTING_COMPONENT: Final = "vpipe.io/operator"
MAX_MESSAGE: Final = 1024  # the API server truncates longer Event messages anyway


@dataclasses.dataclass(frozen=True)
class EventSpec:
    """One Event about one Pipeline or Route."""

    kind: str
    name: str
    uid: str | None
    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Warning"


def manifest(
    spec: EventSpec, namespace: str, *, now: str, suffix: str, instance: str
) -> dict[str, Any]:
    """The Event object; `suffix` makes its name unique (kubectl uses a hex timestamp)."""
    involved: dict[str, Any] = {
        "apiVersion": GROUP_VERSION, "kind": spec.kind, "name": spec.name, "namespace": namespace,
    }
    if spec.uid:
        involved["uid"] = spec.uid
    message = spec.message
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{spec.name[:200]}.{suffix}", "namespace": namespace},
        "involvedObject": involved,
        "reason": spec.reason,
        "message": message,
        "type": spec.type,
        "source": {"component": COMPONENT},
        "reportingComponent": REPORTING_COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
