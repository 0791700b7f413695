"""What shadowing streams costs the client: `python bench/bench_shadow_stream.py [--quick]`.

The proxy (`vpipe serve`, its own process, pinned to core 0 when there are 2 cores) routes one
model to the fast upstream; V2 is the same upstream. Three runs at the same open-loop rate of
streamed requests: no canary, shadow at weight 0, shadow at weight 100 (every stream mirrored).
It prints the time to the first chunk through the proxy and what the proxy adds to it (vs the
upstream called directly), and the shadow counters. Asserts nothing.
"""

from __future__ import annotations

import asyncio
import platform
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from bench_latency import _compare
from conditions import Cores, pin_self
from fast_upstream import UpstreamProcess
from harness import BENCH_MODEL, Endpoints
from proxy_proc import ProxyProcess
from resources_gen import pipeline, route, write

RATE = 100.0


def resources(base_url: str, weight: int | None) -> list[dict[str, Any]]:
    stable = route("bench", [BENCH_MODEL], "bench", 100)
    if weight is not None:
        stable["spec"]["canary"] = {"pipeline": "bench-v2", "weight": weight, "mode": "shadow"}
    return [pipeline("bench", base_url), pipeline("bench-v2", base_url), stable]


def shadow_counts(admin_port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics") as response:
        text = response.read().decode()
    found = [line.split("{", 1)[1] for line in text.splitlines()
             if line.startswith("vpipe_shadow_requests_total{")]
    return ", ".join(found) or "none"


async def main(quick: bool) -> None:
    cores = Cores.choose()
    duration, rounds = (3.0, 2) if quick else (10.0, 4)
    upstream = UpstreamProcess(cores.load)
    pin_self(cores.load)
    print(f"conditions: {platform.python_implementation()} {platform.python_version()}; "
          f"{cores.describe()}; {RATE:g} streams/s open loop, {duration:g} s per side in "
          f"{rounds} interleaved rounds; the upstream sends its first event with the head and "
          "the next ones 2 ms apart")
    print(f"{'config':>22} {'first chunk added p50/p99 ms':>30} {'proxy first chunk p50/p99 ms':>30} "
          "shadow results")
    try:
        for label, weight in (("no canary", None), ("shadow, weight 0", 0),
                              ("shadow, weight 100", 100)):
            with tempfile.TemporaryDirectory() as workdir:
                directory = Path(workdir) / "resources"
                write(directory, resources(upstream.base_url, weight))
                proxy = ProxyProcess(directory, cores.proxy, Path(workdir) / "proxy.log")
                try:
                    await proxy.ready()
                    endpoints = Endpoints(upstream.port, proxy.port)
                    result = await _compare(endpoints, RATE, duration, True, rounds)
                    await asyncio.sleep(0.5)  # let the last shadows finish
                    counts = shadow_counts(proxy.admin_port)
                finally:
                    proxy.stop()
            print(f"{label:>22} {result['added_p50_ms']:>14.2f} / {result['added_p99_ms']:<13.2f}"
                  f" {result['proxy']['p50_ms']:>13.2f} / {result['proxy']['p99_ms']:<14.2f} "
                  f"{counts}; failed {result['proxy']['failed']}", flush=True)
    finally:
        upstream.stop()


if __name__ == "__main__":
    asyncio.run(main("--quick" in sys.argv[1:]))
