"""The `vpipe-config` ConfigMap: what it should contain, whether it fits, and how far it drifted.

Pure. The manifest comes from `vpipe_api.render.configmap_manifest`, the same one `vpipe render`
prints as YAML. Kubernetes caps a ConfigMap's `data` (keys plus values) at 1 MiB;
a bigger config is never truncated: the caller reports ConfigTooLarge and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from vpipe_api.document import (
    CONFIGMAP_KEY,
    MANAGED_LABELS,
    REVISION_ANNOTATION,
    ConfigDocument,
    parse_document,
)
from vpipe_api.errors import VpipeApiError
from vpipe_api.render import configmap_manifest

SIZE_LIMIT: Final = 1024 * 1024  # bytes of data keys + values (the API server's MaxSecretSize)
MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABELS: Final = MANAGED_LABELS
LABEL_SELECTOR: Final = f"{MANAGED_BY}=vpipe"


def desired(document: ConfigDocument) -> dict[str, Any]:
    """The full ConfigMap manifest for `document`."""
    return configmap_manifest(document)


def data_size(manifest: Mapping[str, Any]) -> int:
    """Bytes the API server counts against the limit: every data key plus its value."""
    total = 0
    for key, value in (manifest.get("data") or {}).items():
        total += len(key.encode()) + len(str(value).encode())
    for key, value in (manifest.get("binaryData") or {}).items():
        total += len(key.encode()) + len(str(value)) * 3 // 4  # base64 on the wire
    return total


def revision(manifest: Mapping[str, Any] | None) -> str | None:
    """The config revision a ConfigMap claims to hold (None when absent)."""
    if manifest is None:
        return None
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(REVISION_ANNOTATION)
    return str(value) if value else None


def document(manifest: Mapping[str, Any] | None) -> ConfigDocument | None:
    """The config document a ConfigMap holds; None when absent or unreadable (hand-edited)."""
    raw = ((manifest or {}).get("data") or {}).get(CONFIGMAP_KEY)
    if not isinstance(raw, str):
        return None
    try:
        return parse_document(raw)
    except VpipeApiError:
        return None


def is_managed(manifest: Mapping[str, Any]) -> bool:
    labels = (manifest.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(MANAGED_BY) == "vpipe")


def drifted(existing: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    """Does the live ConfigMap differ from `want` in anything we own (data, revision, labels)?"""
    if revision(existing) != revision(want) or existing.get("binaryData"):
        return True
    if dict(existing.get("data") or {}) != dict(want.get("data") or {}):
        return True
    labels = (existing.get("metadata") or {}).get("labels") or {}
    return any(labels.get(key) != value for key, value in LABELS.items())


def repair_patch(existing: Mapping[str, Any], want: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch turning `existing` into `want`: foreign data keys are removed."""
    data: dict[str, Any] = {key: None for key in existing.get("data") or {}}
    data.update(want["data"])
    patch: dict[str, Any] = {
        "metadata": {
            "labels": dict(LABELS),
            "annotations": {REVISION_ANNOTATION: revision(want)},
        },
        "data": data,
    }
    if existing.get("binaryData"):
        patch["binaryData"] = None
    resource_version = (existing.get("metadata") or {}).get("resourceVersion")
    if resource_version:
        # Optimistic concurrency: a concurrent edit turns this write into a 409 and a retry.
        patch["metadata"]["resourceVersion"] = resource_version
    return patch
