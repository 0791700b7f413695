"""Throughput at saturation through the proxy: non-streaming, routing and metrics on.

64 keep-alive connections send back to back. The same load straight at the fast upstream gives
the ceiling of generator + upstream on their shared core, so a proxy figure close to it would
be the generator's limit, not the proxy's.
"""

from __future__ import annotations

from typing import Any

import wrk
from harness import Endpoints, chat_body
from load import closed_loop
from stats import summary_ms, table

CONNECTIONS = 64


async def run(endpoints: Endpoints, *, duration: float, load_core: int | None) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for via_proxy in (False, True):
        target = "proxy" if via_proxy else "upstream direct"
        result = await closed_loop("127.0.0.1", endpoints.port(via_proxy),
                                   endpoints.request(via_proxy), CONNECTIONS, duration=duration)
        lat = summary_ms(result.latencies)
        rows.append({"target": target, "generator": "python raw asyncio", "rate": result.rate,
                     "requests": result.completed, "failed": result.failed,
                     "p50_ms": lat["p50"], "p99_ms": lat["p99"], "statuses": result.statuses})
        if wrk.available():
            w = wrk.run(endpoints.url(via_proxy), chat_body(), connections=CONNECTIONS,
                        duration=duration, core=load_core)
            rows.append({"target": target, "generator": "wrk", "rate": w.rate,
                         "requests": w.requests, "failed": w.non_2xx + w.socket_errors,
                         "p50_ms": w.p50_ms, "p99_ms": w.p99_ms})
    proxied = [r for r in rows if r["target"] == "proxy"]
    best = max(proxied, key=lambda r: r["rate"])
    return {"connections": CONNECTIONS, "duration_s": duration, "rows": rows,
            "proxy_rate": best["rate"], "proxy_generator": best["generator"]}


def report(result: dict[str, Any]) -> str:
    return table(
        f"Throughput at saturation (non-streaming, {result['connections']} connections, "
        f"{result['duration_s']:g} s each)",
        ["target", "generator", "req/s", "requests", "failed", "p50 ms", "p99 ms"],
        [[r["target"], r["generator"], r["rate"], r["requests"], r["failed"], r["p50_ms"],
          r["p99_ms"]] for r in result["rows"]],
        ["'upstream direct' = ceiling of load generator + fast upstream sharing one core",
         "proxy on its own core; routing (1 route) and Prometheus metrics on; uvloop"],
    )
