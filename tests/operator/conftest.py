"""Fixtures for the operator tests: a kmock API server with the vpipe CRDs, and a running operator.

Every test that uses `cluster` is also an RBAC test: at teardown, each request the operator (or
kopf) made is mapped to (apiGroup, resource, verb) and must be granted by
operator/rbac/clusterrole.yaml.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import kmock
import pytest

from tests.operator.harness import FAST, Cluster, OperatorThread, ungranted, write_kubeconfig
from vpipe_operator.credentials import load_credentials
from vpipe_operator.settings import OperatorSettings

RESOURCES = [
    ("vpipe.io/v1alpha1/pipelines", "Pipeline", True, {"status"}),
    ("vpipe.io/v1alpha1/routes", "Route", True, {"status"}),
    ("v1/configmaps", "ConfigMap", True, set()),
    ("v1/secrets", "Secret", True, set()),
    ("v1/events", "Event", True, set()),
    ("v1/pods", "Pod", True, {"status"}),
    ("v1/namespaces", "Namespace", False, {"status"}),
    ("apiextensions.k8s.io/v1/customresourcedefinitions", "CustomResourceDefinition", False,
     {"status"}),
]


@pytest.fixture
async def cluster(kmock: kmock.KubernetesEmulator) -> AsyncIterator[Cluster]:
    # Declared one by one: kmock's `load_bundled()` uses a deprecated importlib API.
    for key, kind, namespaced, subresources in RESOURCES:
        kmock.resources[key] = kmock.ResourceInfo(
            namespaced=namespaced, kind=kind, singular=kind.lower(), subresources=subresources,
            verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
        )
    result = Cluster(kmock)
    compactor = asyncio.create_task(result.compact_forever())
    yield result
    compactor.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await compactor
    missing = ungranted(result.operator_requests())
    assert not missing, f"operator/rbac/clusterrole.yaml lacks {sorted(missing)}"


@pytest.fixture
def operator_factory(
    cluster: Cluster, tmp_path: Path
) -> Callable[..., OperatorThread]:
    """Build (not start) operators against `cluster`; settings default to fast timings."""
    credentials = load_credentials({"KUBECONFIG": str(write_kubeconfig(tmp_path, cluster.url))})

    def make(settings: OperatorSettings = FAST) -> OperatorThread:
        return OperatorThread(settings, credentials)

    return make


@pytest.fixture
async def operator(operator_factory: Callable[..., OperatorThread]) -> AsyncIterator[OperatorThread]:
    running = operator_factory().start()
    yield running
    await running.stop()
