"""What shadowing streams costs the client: `python bench/bench_shadow_stream.py [--quick]`.

The proxy (`vpipe serve`, its own process, pinned to core 0 when there are 2 cores) routes one
model to the fast upstream; V2 is the same upstream. Three configs, each in a fresh proxy: no
canary, shadow at weight 0, shadow at weight 100 (every stream mirrored). For each:

- first chunk at a fixed open-loop rate of streams: through the proxy, and what the proxy adds
  to the upstream called directly (same generator, interleaved rounds, pooled percentiles);
- saturation: back-to-back streams on `CONNECTIONS` keep-alive connections, giving streams/s,
  the client's first chunk and whole stream at that load, and the shadow counters (at weight
  100 the proxy also runs V2's streams, up to VPIPE_SHADOW_CONCURRENCY at once; the rest are
  dropped, as designed).

Asserts nothing.
"""

from __future__ import annotations

import asyncio
import platform
import sys
import urllib.request
from typing import Any

from bench_latency import _compare
from conditions import Cores, pin_self
from fast_upstream import CHUNK_INTERVAL, UpstreamProcess
from harness import HOST, PATH, Endpoints, chat_body
from load import closed_loop, post_request
from proxy_proc import fresh_proxy
from resources_gen import BENCH_MODEL, pipeline, route
from stats import summary_ms

RATE = 100.0
CONNECTIONS = 32
CONFIGS: tuple[tuple[str, int | None], ...] = (
    ("no canary", None), ("shadow, weight 0", 0), ("shadow, weight 100", 100))


def resources(base_url: str, weight: int | None) -> list[dict[str, Any]]:
    stable = route("bench", [BENCH_MODEL], "bench", 100)
    if weight is not None:
        stable["spec"]["canary"] = {"pipeline": "bench-v2", "weight": weight, "mode": "shadow"}
    return [pipeline("bench", base_url), pipeline("bench-v2", base_url), stable]


def shadow_counts(admin_port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics") as response:
        text = response.read().decode()
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("vpipe_shadow_requests_total{"):
            result = line.split('result="', 1)[1].split('"', 1)[0]
            counts[result] = counts.get(result, 0) + int(float(line.rsplit(" ", 1)[1]))
    return counts


async def saturate(port: int, duration: float) -> dict[str, Any]:
    request = post_request(HOST, port, PATH, chat_body(stream=True))
    result = await closed_loop(HOST, port, request, CONNECTIONS, duration=duration)
    first, whole = summary_ms(result.first_chunk), summary_ms(result.latencies)
    return {"rate": result.rate, "failed": result.failed, "first_p50_ms": first["p50"],
            "first_p99_ms": first["p99"], "whole_p50_ms": whole["p50"],
            "whole_p99_ms": whole["p99"]}


async def settled(admin_port: int) -> dict[str, int]:
    """The shadow counters once they stop moving (the last copies finish after the load)."""
    counts = shadow_counts(admin_port)
    for _ in range(50):
        await asyncio.sleep(0.2)
        latest = shadow_counts(admin_port)
        if latest == counts:
            break
        counts = latest
    return counts


def describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{v:,} {k}" for k, v in sorted(counts.items())) or "none"


async def main(quick: bool) -> None:
    cores = Cores.choose()
    duration, rounds, saturation = (3.0, 2, 3.0) if quick else (10.0, 4, 10.0)
    upstream = UpstreamProcess(cores.load)
    pin_self(cores.load)
    print(f"conditions: {platform.python_implementation()} {platform.python_version()}; "
          f"{cores.describe()}; streamed chat requests, the upstream sends 5 events (the first "
          f"with the head, then {CHUNK_INTERVAL * 1000:g} ms apart) and [DONE]; default "
          "VPIPE_SHADOW_CONCURRENCY (32)")
    print(f"first chunk: {RATE:g} streams/s open loop, {duration:g} s per side in {rounds} "
          f"interleaved rounds; saturation: {CONNECTIONS} connections back to back, "
          f"{saturation:g} s")
    head = (f"{'config':>20} | {'1st chunk added p50/p99':>23} | {'via proxy p50/p99':>17} | "
            f"{'saturated streams/s':>19} | {'1st chunk p50/p99':>17} | {'whole p50/p99':>15} "
            "| shadow copies (saturation)")
    print(head)
    try:
        for label, weight in CONFIGS:
            async with fresh_proxy(resources(upstream.base_url, weight), cores.proxy) as proxy:
                endpoints = Endpoints(upstream.port, proxy.port)
                paced = await _compare(endpoints, RATE, duration, True, rounds)
                before = await settled(proxy.admin_port)
                sat = await saturate(proxy.port, saturation)
                after = await settled(proxy.admin_port)
                counts = {k: v - before.get(k, 0) for k, v in after.items()
                          if v - before.get(k, 0)}
            failed = paced["proxy"]["failed"] + sat["failed"]
            print(f"{label:>20} | {paced['added_p50_ms']:>10.2f} / {paced['added_p99_ms']:<10.2f}"
                  f" | {paced['proxy']['p50_ms']:>7.2f} / {paced['proxy']['p99_ms']:<7.2f} | "
                  f"{sat['rate']:>19,.0f} | {sat['first_p50_ms']:>7.2f} / "
                  f"{sat['first_p99_ms']:<7.2f} | {sat['whole_p50_ms']:>6.2f} / "
                  f"{sat['whole_p99_ms']:<6.2f} | {describe(counts)}; failed {failed}",
                  flush=True)
    finally:
        upstream.stop()


if __name__ == "__main__":
    asyncio.run(main("--quick" in sys.argv[1:]))
