"""The kopf wiring (`handlers`): kopf's settings and the handler ids kopf knows us by.

Bounded watch timeouts (kopf's silent-watch pitfall), the server-side label selector for our
ConfigMaps, quiet event posting, scanning, and the stable handler ids.
"""

from __future__ import annotations

import logging

import kopf

from vpipe_operator import handlers
from vpipe_operator.credentials import Credentials
from vpipe_operator.runtime import Runtime
from vpipe_operator.settings import OperatorSettings


def test_kopf_settings_come_from_ours() -> None:
    ours = OperatorSettings(watch_server_timeout=111, watch_client_timeout=122,
                            watch_connect_timeout=7, request_timeout=9, scanning=False)
    settings = kopf.OperatorSettings()
    handlers.configure(settings, ours)
    assert settings.watching.server_timeout == 111
    assert settings.watching.client_timeout == 122
    assert settings.watching.connect_timeout == 7
    assert settings.networking.request_timeout == 9
    assert settings.watching.label_selectors["v1", "configmaps"] == (
        "app.kubernetes.io/managed-by=vpipe")
    assert settings.posting.level == logging.WARNING
    assert settings.scanning.disabled


def test_watch_server_timeout_is_whole_seconds() -> None:
    # kube-apiserver refuses `timeoutSeconds=300.0` with 400 (kmock took it): found on kapi.
    settings = kopf.OperatorSettings()
    handlers.configure(settings, OperatorSettings(watch_server_timeout=300.0))
    assert settings.watching.server_timeout == 300
    assert isinstance(settings.watching.server_timeout, int)
    handlers.configure(settings, OperatorSettings(watch_server_timeout=0.4))
    assert settings.watching.server_timeout == 1


def test_handler_ids_are_stable() -> None:
    runtime = Runtime(OperatorSettings(), Credentials(server="http://x", origin="test"))
    registry = runtime.registry
    watching = {h.id for h in registry._watching.get_all_handlers()}
    activities = {h.id for h in registry._activities.get_all_handlers()}
    assert watching == {"pipeline-events", "route-events", "configmap-events",
                        "proxy-pod-events"}
    assert activities == {"vpipe-startup", "vpipe-cleanup", "vpipe-login"}
    gateless = Runtime(OperatorSettings(sidecar_gate=False), Credentials(server="http://x",
                                                                         origin="test"))
    assert "proxy-pod-events" not in {h.id for h in gateless.registry._watching.get_all_handlers()}
