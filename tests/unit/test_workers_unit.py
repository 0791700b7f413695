"""The pure parts of multi-worker mode: the worker count `auto` reads from cgroups, and how the
supervisor merges its workers' /readyz and /metrics.

Aspects: cgroup v2 (nested, tightest quota wins) and v1 quotas, no limit, rounding up and the
affinity cap; refused counts; /readyz with workers on different revisions, one down, one that
rejected a config; metrics labelled per worker and joined per family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from vpipe_proxy.cpus import auto_workers, cgroup_cpu_limit, parse_cpu_max, resolve_workers
from vpipe_proxy.settings import SettingsError
from vpipe_proxy.worker_admin import WorkerView, exposition, label_families, merge_readyz


def test_cpu_max_lines() -> None:
    assert parse_cpu_max("max 100000\n") is None
    assert parse_cpu_max("150000 100000\n") == 1.5
    assert parse_cpu_max("50000") == 0.5


def test_cgroup_v2_takes_the_tightest_quota_up_the_tree(tmp_path: Path) -> None:
    (tmp_path / "kubepods" / "pod1" / "ctr").mkdir(parents=True)
    (tmp_path / "kubepods" / "cpu.max").write_text("400000 100000\n")
    (tmp_path / "kubepods" / "pod1" / "cpu.max").write_text("250000 100000\n")
    (tmp_path / "kubepods" / "pod1" / "ctr" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path, "0::/kubepods/pod1/ctr\n") == 2.5
    # Inside a cgroup namespace the container's own cgroup is the root.
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert cgroup_cpu_limit(tmp_path, "0::/\n") == 1.0


def test_cgroup_v1_quota_and_no_limit(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path, "") is None
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path, "") is None
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    assert cgroup_cpu_limit(tmp_path, "") == 3.0


def test_auto_rounds_the_limit_up_within_the_usable_cpus() -> None:
    assert auto_workers(0.5, 8) == 1
    assert auto_workers(1.5, 8) == 2
    assert auto_workers(16, 4) == 4
    assert auto_workers(None, 6) == 6


def test_worker_counts() -> None:
    assert resolve_workers("3") == 3
    assert resolve_workers(" AUTO ") >= 1
    for bad in ("0", "-2", "1.5", "many", ""):
        with pytest.raises(SettingsError, match="VPIPE_WORKERS"):
            resolve_workers(bad)


def _reload(ok: bool, revision: str, error: str | None = None) -> dict[str, Any]:
    return {"ok": ok, "revision": revision, "error": error}


def view(worker: int, revision: str | None, *, state: str = "running",
         reload: dict[str, Any] | None = None) -> WorkerView:
    body = None if state != "running" else {
        "ready": revision is not None, "revision": revision,
        "lastReload": reload or _reload(True, revision or "")}
    return WorkerView(worker, 100 + worker, state, 0, None, body,
                      None if state == "running" else state)


def test_readyz_of_workers_on_one_revision() -> None:
    status, body = merge_readyz([view(0, "r1"), view(1, "r1")], "src", resyncs=0, stopping=False)
    assert status == 200
    assert (body["revision"], body["converged"], body["lastReload"]["ok"]) == ("r1", True, True)


def test_readyz_names_workers_that_serve_different_revisions() -> None:
    lagging = view(1, "r1", reload=_reload(False, "r1", "provider p: warm-up failed"))
    status, body = merge_readyz([view(0, "r2"), lagging], "src", resyncs=2, stopping=False)
    # Each serves a good config, so traffic is fine; the operator's gate must wait, though.
    assert status == 200
    assert body["revision"] is None and body["converged"] is False
    assert body["lastReload"]["ok"] is False
    assert "0: r2, 1: r1" in body["lastReload"]["error"]
    assert "worker 1: provider p: warm-up failed" in body["lastReload"]["error"]
    assert body["resyncs"] == 2


def test_readyz_reports_a_rejection_all_workers_share() -> None:
    rejected = _reload(False, "r1", "Route x: bad")
    status, body = merge_readyz([view(0, "r1", reload=rejected), view(1, "r1", reload=rejected)],
                                "src", resyncs=0, stopping=False)
    assert status == 200 and body["revision"] == "r1"
    assert body["lastReload"]["error"] == "Route x: bad" and body["lastReload"]["worker"] == 0


def test_readyz_is_503_while_a_worker_is_down_or_stopping() -> None:
    status, body = merge_readyz([view(0, "r1"), view(1, None, state="restarting")], "src",
                                resyncs=0, stopping=False)
    assert status == 503 and body["problems"] == ["worker 1: restarting"]
    assert body["revision"] == "r1"  # the running workers agree
    status, body = merge_readyz([view(0, "r1")], "src", resyncs=0, stopping=True)
    assert status == 503 and body["problems"] == ["shutting down"]


def _worker_text(requests: float) -> str:
    registry = CollectorRegistry()
    counter = Counter("vpipe_requests", "Requests.", ["route"], registry=registry)
    counter.labels("a").inc(requests)
    return generate_latest(registry).decode()


def test_metrics_are_labelled_per_worker_and_joined_per_family() -> None:
    text = exposition(label_families({0: _worker_text(3), 1: _worker_text(4)})).decode()
    assert text.count("# TYPE vpipe_requests_total counter") == 1
    samples = {(s.labels["worker"], s.labels["route"]): s.value
               for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "vpipe_requests_total"}
    assert samples == {("0", "a"): 3.0, ("1", "a"): 4.0}
