"""The chart's monitoring: the sidecars' PodMonitor and the Grafana dashboard ConfigMap.

Aspects: both are off by default; the PodMonitor selects what the webhook injects (label and
admin port name, taken from the webhook's own constants); the dashboard ConfigMap carries the
Grafana sidecar's label and exactly files/dashboards/vpipe.json; every series the dashboard
queries is one the proxy exports, every panel has a query and a unique id, and its variables
are the ones the queries use. (The queries run against a real Prometheus in
tests/functional/test_dashboard_queries.py.)
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.chart.helm import CHART, NAMESPACE, find, template
from vpipe_operator import sidecars
from vpipe_operator.injection.mutation import PORT_NAMES
from vpipe_proxy.metrics import Metrics
from vpipe_proxy.threads import ThreadPins

DASHBOARD = CHART / "files" / "dashboards" / "vpipe.json"
SERIES = re.compile(r"\b(vpipe_[a-z_]+)\b")


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def queries(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def exported_series() -> set[str]:
    metrics = Metrics()
    metrics.watch_threads(ThreadPins(1))
    names = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                "gauge": ("",)}
    for family in metrics.registry.collect():
        names.update(family.name + s for s in suffixes[family.type])
    return names


def test_monitoring_is_off_by_default() -> None:
    docs = template()
    assert not [d for d in docs if d["kind"] == "PodMonitor"]
    assert not [d for d in docs if d["metadata"]["name"] == "vpipe-dashboard"]


def test_the_pod_monitor_scrapes_what_the_webhook_injects() -> None:
    monitor = find(template({"podMonitor": {"enabled": True, "interval": "15s",
                                            "labels": {"release": "prom"}}}), "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"] == {sidecars.LABEL: "sidecar"}
    assert spec["namespaceSelector"] == {"any": True}
    assert spec["podMetricsEndpoints"] == [{"port": PORT_NAMES[1], "path": "/metrics",
                                            "interval": "15s", "scrapeTimeout": "10s"}]


def test_the_dashboard_configmap_holds_the_dashboard() -> None:
    docs = template({"grafanaDashboard": {"enabled": True,
                                          "annotations": {"grafana_folder": "vpipe"}}})
    configmap = find(docs, "ConfigMap", "vpipe-dashboard")
    assert configmap["metadata"]["namespace"] == NAMESPACE
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "vpipe"}
    assert json.loads(configmap["data"]["vpipe.json"]) == dashboard()
    elsewhere = find(template({"grafanaDashboard": {
        "enabled": True, "namespace": "monitoring", "sidecarLabel": "dashboards",
        "sidecarLabelValue": "vpipe"}}), "ConfigMap", "vpipe-dashboard")["metadata"]
    assert elsewhere["namespace"] == "monitoring"
    assert elsewhere["labels"]["dashboards"] == "vpipe" and "grafana_dashboard" not in \
        elsewhere["labels"]


def test_every_queried_series_is_exported_by_the_proxy() -> None:
    exported = exported_series()
    used = {name for expr in queries(dashboard()) for name in SERIES.findall(expr)}
    assert used, "the dashboard queries nothing"
    assert used <= exported, f"not exported by the proxy: {sorted(used - exported)}"
    # The dashboard covers what rollouts are judged by.
    for series in ("vpipe_requests_total", "vpipe_request_duration_seconds_bucket",
                   "vpipe_translation_events_total", "vpipe_shadow_match_total",
                   "vpipe_config_info"):
        assert series in used


def test_panels_and_variables() -> None:
    board = dashboard()
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for p in panels:
        if p["type"] != "row":
            assert p.get("targets") and all(t["expr"] for t in p["targets"]), p["title"]
            assert p["description"], p["title"]
    variables = {v["name"] for v in board["templating"]["list"]}
    used = {m for expr in queries(board) for m in re.findall(r"\$(\w+)", expr)}
    assert used - {"__rate_interval"} <= variables
    assert {"datasource", "namespace", "route"} <= variables


@pytest.mark.parametrize("name", ["uid", "title", "panels", "templating", "schemaVersion"])
def test_dashboard_has(name: str) -> None:
    assert dashboard()[name]
