"""The gateway's worker processes (gateway.workers): the count the chart gives VPIPE_WORKERS.

Aspects: "auto" (the default) is ceil(limits.cpu), else ceil(requests.cpu), else 1; a number
passes through; the proxy reads the rendered value; the schema refuses other values.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm import find, template, template_error
from vpipe_proxy.cpus import resolve_workers
from vpipe_proxy.settings import Settings


def gateway_env(gateway: dict[str, Any]) -> dict[str, str]:
    docs = template({"gateway": {"enabled": True, **gateway}})
    container = find(docs, "Deployment", "vpipe-gateway")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


@pytest.mark.parametrize(("gateway", "workers"), [
    ({}, 1),  # the default limit is 1 CPU: one process, as before workers existed
    ({"resources": {"limits": {"cpu": "2500m"}}}, 3),
    ({"resources": {"limits": {"cpu": 4}}}, 4),
    ({"resources": {"limits": {"cpu": "0.5"}}}, 1),
    ({"resources": {"limits": {"cpu": None}, "requests": {"cpu": "1.2"}}}, 2),
    ({"resources": {"limits": {"cpu": None}, "requests": {"cpu": None}}}, 1),
    ({"workers": 3, "resources": {"limits": {"cpu": 1}}}, 3),
])
def test_workers_default_from_the_cpu_limit(gateway: dict[str, Any], workers: int) -> None:
    env = gateway_env(gateway)
    assert env["VPIPE_WORKERS"] == str(workers)
    assert resolve_workers(Settings.from_environ(env).workers) == workers


@pytest.mark.parametrize("value", [0, "many", 1.5])
def test_schema_refuses_other_worker_counts(value: object) -> None:
    assert "workers" in template_error({"gateway": {"enabled": True, "workers": value}})
