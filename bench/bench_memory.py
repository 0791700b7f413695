"""Proxy memory: VmRSS right after start (idle), then after each batch of requests.

A flat figure across the second batch means nothing grows per request (caches, metrics label
sets, pooled connections or buffers kept forever).
"""

from __future__ import annotations

import asyncio
from typing import Any

from harness import Endpoints
from load import closed_loop
from proxy_proc import ProxyProcess
from stats import table

CONNECTIONS = 64


async def run(proxy: ProxyProcess, endpoints: Endpoints, idle_kib: int,
              batch: int, batches: int = 2) -> dict[str, Any]:
    points: list[dict[str, Any]] = [{"after_requests": 0, "rss_mib": idle_kib / 1024,
                                     "failed": 0}]
    total = 0
    request = endpoints.request(True)
    for _ in range(batches):
        result = await closed_loop("127.0.0.1", endpoints.proxy_port, request, CONNECTIONS,
                                   total=batch, record=False)
        total += result.completed
        await asyncio.sleep(0.5)  # let the proxy finish any post-response work
        points.append({"after_requests": total, "rss_mib": proxy.rss_kib() / 1024,
                       "failed": result.failed, "statuses": result.statuses})
    growth = points[-1]["rss_mib"] - points[-2]["rss_mib"]
    return {"batch": batch, "points": points, "idle_mib": idle_kib / 1024,
            "growth_last_batch_mib": growth,
            "note": "these are the first requests the proxy serves (run before the other tests)"}


def report(result: dict[str, Any]) -> str:
    return table(
        "Proxy RSS (VmRSS from /proc/<pid>/status)",
        ["point", "requests served", "RSS MiB", "failed"],
        [["idle after start" if p["after_requests"] == 0 else f"after {p['after_requests']:,}",
          p["after_requests"], p["rss_mib"], p["failed"]] for p in result["points"]],
        [f"growth over the last {result['batch']:,} requests: "
         f"{result['growth_last_batch_mib']:+.2f} MiB",
         "batches sent with 64 keep-alive connections; " + result["note"]],
    )
