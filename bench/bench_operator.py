"""Operator reconcile cost for one namespace of N Routes, in process: prints, asserts nothing.

The pure part (parse, validate, render, decide statuses) is what grows with the number of
resources; API writes are one ConfigMap plus one status per changed resource and are bounded by
the API server, not by vpipe. Run: python bench/bench_operator.py [N ...]
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from typing import Any

from vpipe_operator import reconcile


def objects(count: int, globs: bool) -> list[dict[str, Any]]:
    pipeline = {"apiVersion": "vpipe.io/v1alpha1", "kind": "Pipeline",
                "metadata": {"name": "p", "namespace": "ns", "generation": 1, "uid": "p"},
                "spec": {"modules": [{"type": "provider", "provider": {"family": "mock"}}]}}
    routes = [{"apiVersion": "vpipe.io/v1alpha1", "kind": "Route",
               "metadata": {"name": f"r-{i}", "namespace": "ns", "generation": 1, "uid": f"r{i}"},
               "spec": {"match": {"models": [f"model-{i}", *([f"family-{i}-*"] if globs else [])]},
                        "pipeline": "p"}} for i in range(count)]
    return [pipeline, *routes]


def once(objs: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    snapshot = reconcile.Snapshot("ns", tuple(reconcile.Observed.from_api(o["kind"], o)
                                              for o in objs), None)
    analysis = reconcile.analyze(snapshot)
    reconcile.decide(analysis, {}, now="2026-01-01T00:00:00Z")
    return time.perf_counter() - started


def main(counts: list[int]) -> None:
    print(f"conditions: {platform.python_implementation()} {platform.python_version()}, "
          "one process, pure reconcile (no API calls), median of 5")
    print(f"{'routes':>8} {'patterns':>22} {'ms':>10}")
    for count in counts:
        for globs in (False, True):
            objs = objects(count, globs)
            ms = statistics.median(once(objs) for _ in range(5)) * 1000
            kind = "exact + glob each" if globs else "exact only"
            print(f"{count:>8} {kind:>22} {ms:>10.1f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 1000, 5000])
