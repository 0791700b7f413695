"""The kopf handlers: thin, with stable ids, and nothing but a `touch` of the namespace.

Watching (`kopf.on.event`) instead of kopf's create/update/delete handlers is deliberate: the
reconcile is per namespace and level-based (it re-reads everything), so there is nothing to
persist per object: no finalizers, no kopf annotations, no extra patches on user resources.
The ConfigMap watch is filtered by label (also server-side) so a hand edit of `vpipe-config`,
or its deletion, brings the namespace back to the rendered state. Pods are watched only when
they carry the `vpipe.io/proxy` label (the proxies whose loaded revision gates canaries).

The handler ids are part of kopf's contract with the cluster (it logs and may persist by id);
do not rename them.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Protocol

import kopf

from vpipe_api import API_GROUP, API_VERSION
from vpipe_api.document import CONFIGMAP_NAME
from vpipe_operator import configmap, sidecars
from vpipe_operator.credentials import Credentials
from vpipe_operator.settings import OperatorSettings


class Host(Protocol):
    """What the handlers need from the running operator (`runtime.Runtime`)."""

    settings: OperatorSettings
    credentials: Credentials

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def touch(self, namespace: str | None) -> None: ...


def build_registry(host: Host) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(id="vpipe-startup", registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings, host.settings)
        await host.start()

    @kopf.on.cleanup(id="vpipe-cleanup", registry=registry)
    async def cleanup(**_: Any) -> None:
        await host.stop()

    @kopf.on.login(id="vpipe-login", registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(host.credentials)

    @kopf.on.event(API_GROUP, API_VERSION, "pipelines", id="pipeline-events", registry=registry)
    async def pipeline_event(namespace: str | None, **_: Any) -> None:
        host.touch(namespace)

    @kopf.on.event(API_GROUP, API_VERSION, "routes", id="route-events", registry=registry)
    async def route_event(namespace: str | None, **_: Any) -> None:
        host.touch(namespace)

    @kopf.on.event("", "v1", "configmaps", id="configmap-events", registry=registry,
                   labels={configmap.MANAGED_BY: "vpipe"})
    async def configmap_event(name: str, namespace: str | None, **_: Any) -> None:
        if name == CONFIGMAP_NAME:
            host.touch(namespace)

    if host.settings.sidecar_gate:  # off: pods are neither watched nor listed (nor granted)
        @kopf.on.event("", "v1", "pods", id="proxy-pod-events", registry=registry,
                       labels={sidecars.LABEL: kopf.PRESENT})
        async def proxy_pod_event(namespace: str | None, **_: Any) -> None:
            # A proxy started, became ready or went away: the "loaded by N of M" count and a
            # canary's gate may have changed.
            host.touch(namespace)

    return registry


def configure(settings: kopf.OperatorSettings, ours: OperatorSettings) -> None:
    """kopf's settings from ours: bounded watches, timeouts, quiet event posting."""
    # Bounded watch requests: without them a watch silently cut by a load balancer or an
    # API-server restart can hang forever and the operator stops seeing changes.
    # The API's `timeoutSeconds` is an integer: kube-apiserver answers 400 to "300.0".
    settings.watching.server_timeout = max(1, math.ceil(ours.watch_server_timeout))
    settings.watching.client_timeout = ours.watch_client_timeout
    settings.watching.connect_timeout = ours.watch_connect_timeout
    settings.networking.request_timeout = ours.request_timeout
    settings.networking.connect_timeout = ours.watch_connect_timeout
    settings.scanning.disabled = not ours.scanning
    # Only our ConfigMaps: filtered by the API server, not just by the handler.
    settings.watching.label_selectors["v1", "configmaps"] = configmap.LABEL_SELECTOR
    # Only the proxies' pods, never every pod of the cluster.
    settings.watching.label_selectors["v1", "pods"] = sidecars.LABEL_SELECTOR
    # Our own Events carry the rejections; kopf posts only its own warnings and errors.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "vpipe-operator"


def connection_info(credentials: Credentials) -> kopf.ConnectionInfo:
    """The same endpoint and identity our REST client uses, for kopf's watches.

    kopf calls the login handler again when the API answers 401, so an expired exec-plugin
    credential is renewed through `current_token` here too.
    """
    token = credentials.current_token()
    return kopf.ConnectionInfo(
        server=credentials.server,
        ca_path=credentials.ca_path,
        insecure=credentials.insecure,
        username=credentials.username,
        password=credentials.password,
        scheme="Bearer" if token else None,
        token=token,
        certificate_path=credentials.cert_path,
        private_key_path=credentials.key_path,
        default_namespace=credentials.namespace,
        proxy_url=credentials.proxy,
    )
