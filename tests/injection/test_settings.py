"""`WebhookSettings.from_environ`: defaults, every variable parsed, and messages that name the
variable and what it needs to be."""

from __future__ import annotations

import pytest

from vpipe_operator.errors import SettingsError
from vpipe_operator.injection.settings import SidecarSettings, WebhookSettings


def test_defaults_from_an_empty_environment() -> None:
    s = WebhookSettings.from_environ({})
    assert s == WebhookSettings()
    assert (s.port, s.lookup_timeout, s.namespace) == (8443, 2.0, "")
    assert s.sidecar == SidecarSettings()
    assert (s.sidecar.cpu_request, s.sidecar.memory_request) == ("50m", "64Mi")
    assert (s.sidecar.cpu_limit, s.sidecar.memory_limit) == ("500m", "256Mi")


def test_every_variable() -> None:
    s = WebhookSettings.from_environ({
        "VPIPE_WEBHOOK_HOST": "127.0.0.1", "VPIPE_WEBHOOK_PORT": "9443",
        "VPIPE_WEBHOOK_CERT_FILE": "/c", "VPIPE_WEBHOOK_KEY_FILE": "/k",
        "VPIPE_WEBHOOK_CERT_RELOAD_INTERVAL": "5", "VPIPE_WEBHOOK_LOOKUP_TIMEOUT": "1.5",
        "VPIPE_WEBHOOK_SHUTDOWN_DELAY": "0", "VPIPE_WEBHOOK_NAMESPACE": "vpipe-system",
        "VPIPE_WEBHOOK_PROXY_IMAGE": "r/p:1", "VPIPE_WEBHOOK_PROXY_PULL_POLICY": "Always",
        "VPIPE_WEBHOOK_PROXY_CPU_REQUEST": "0.1", "VPIPE_WEBHOOK_PROXY_MEMORY_REQUEST": "1e8",
        "VPIPE_WEBHOOK_PROXY_CPU_LIMIT": "none", "VPIPE_WEBHOOK_PROXY_MEMORY_LIMIT": "1Gi",
        "VPIPE_WEBHOOK_PROXY_PORT": "18080", "VPIPE_WEBHOOK_PROXY_ADMIN_PORT": "19090",
        "VPIPE_WEBHOOK_NATIVE_SIDECAR": "true",
    })
    assert (s.host, s.port, s.cert_file, s.key_file) == ("127.0.0.1", 9443, "/c", "/k")
    assert (s.cert_reload_interval, s.lookup_timeout, s.shutdown_delay) == (5.0, 1.5, 0.0)
    assert s.namespace == "vpipe-system"
    assert s.sidecar == SidecarSettings(
        image="r/p:1", image_pull_policy="Always", cpu_request="0.1", memory_request="1e8",
        cpu_limit="", memory_limit="1Gi", port=18080, admin_port=19090, native_sidecar=True)


@pytest.mark.parametrize(("name", "value", "needs"), [
    ("VPIPE_WEBHOOK_PORT", "https", "a port number"),
    ("VPIPE_WEBHOOK_PROXY_PORT", "0", "a port number"),
    ("VPIPE_WEBHOOK_LOOKUP_TIMEOUT", "0", "a positive number of seconds"),
    ("VPIPE_WEBHOOK_SHUTDOWN_DELAY", "-1", "zero or more seconds"),
    ("VPIPE_WEBHOOK_PROXY_CPU_REQUEST", "fast", "a Kubernetes quantity"),
    ("VPIPE_WEBHOOK_PROXY_PULL_POLICY", "sometimes", "Always, IfNotPresent or Never"),
    ("VPIPE_WEBHOOK_NATIVE_SIDECAR", "perhaps", "true or false"),
])
def test_bad_values_name_the_variable(name: str, value: str, needs: str) -> None:
    with pytest.raises(SettingsError, match=f"Invalid {name}={value!r}. Needs to be {needs}"):
        WebhookSettings.from_environ({name: value})


def test_client_and_admin_port_must_differ() -> None:
    with pytest.raises(SettingsError, match="both are 9090"):
        WebhookSettings.from_environ({"VPIPE_WEBHOOK_PROXY_PORT": "9090"})
