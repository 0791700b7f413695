"""What a split canary costs per request: `python bench/bench_canary.py [--quick]`.

Two parts; asserts nothing.

1. In process, one core: the assignment itself per request (stickiness key, bucket, thread pin
   lookup) for the key kinds the proxy uses, in µs; the memory a Responses thread pin takes
   (tracemalloc over 100,000 pins; `VPIPE_THREAD_PINS` allows 20,000 by default); finding the
   response id in a stream's first event.
2. End to end: the proxy (`vpipe serve`, its own process, pinned to core 0 when there are 2
   cores) in front of the fast upstream, V2 being the same upstream, each config in a fresh
   proxy: no canary, split at weight 0, 50, 100. Saturation (64 connections, non-streaming;
   configs interleaved in rounds, as this machine's throughput drifts by 10-15 % between runs)
   and the latency added at 500 req/s open loop (interleaved with direct calls, pooled rounds). The
   benchmark's request carries no user or header, so its key is the conversation's opening,
   the dearest kind.
"""

from __future__ import annotations

import asyncio
import platform
import statistics
import sys
import timeit
import tracemalloc
from contextlib import AsyncExitStack
from typing import Any

import orjson
from bench_latency import _compare
from conditions import Cores, pin_self
from fast_upstream import UpstreamProcess
from harness import HOST, PATH, Endpoints, chat_body
from load import closed_loop, post_request
from proxy_proc import fresh_proxy
from resources_gen import BENCH_MODEL, pipeline, route
from stats import summary_ms

from vpipe_proxy.splitter import bucket, in_canary, sticky_key
from vpipe_proxy.threads import RESPONSE, ResponseIdSniffer, ThreadPins

CONFIGS: tuple[tuple[str, int | None], ...] = (
    ("no canary", None), ("split, weight 0", 0), ("split, weight 50", 50),
    ("split, weight 100", 100))
CONNECTIONS = 64
RATE = 500.0


def _chat(turns: int) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are terse. " * 20}]
    for n in range(turns):
        messages.append({"role": "user", "content": f"question {n} " * 30})
        messages.append({"role": "assistant", "content": f"answer {n} " * 30})
    return {"model": "m", "messages": messages}


def micro() -> None:
    cases = {
        "header key (x-user-id)": (_chat(10), {"x-user-id": "user-12345"}, "x-user-id"),
        "user field": ({**_chat(10), "user": "user-12345"}, {}, None),
        "conversation opening, 1 turn": (_chat(1), {}, None),
        "conversation opening, 20 turns": (_chat(20), {}, None),
    }
    print("assignment per request (sticky_key + bucket + in_canary), µs, best of 5 x 20,000:")
    for label, (body, headers, header) in cases.items():
        def assign(body: dict[str, Any] = body, headers: dict[str, str] = headers,
                   header: str | None = header) -> bool:
            return in_canary(bucket("route", sticky_key(body, headers, header)), 50)
        best = min(timeit.repeat(assign, number=20_000, repeat=5)) / 20_000
        print(f"  {label:<32} {best * 1e6:6.2f}")

    pins = ThreadPins(100_000)
    ids = [f"resp_{n:048x}" for n in range(100_000)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for rid in ids:
        pins.pin("my-route", (RESPONSE, rid), "v2")
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    hit = min(timeit.repeat(lambda: pins.get("my-route", (RESPONSE, ids[5000])),
                            number=100_000, repeat=5)) / 100_000
    miss = min(timeit.repeat(lambda: pins.get("my-route", (RESPONSE, "resp_unknown")),
                             number=100_000, repeat=5)) / 100_000
    print(f"thread pins: 100,000 pins (ids of 53 chars, the strings already allocated) take "
          f"{used / 1e6:.1f} MB, {used / 100_000:.0f} bytes each; lookup hit "
          f"{hit * 1e6:.2f} µs, miss {miss * 1e6:.2f} µs")

    created = b"event: response.created\ndata: " + orjson.dumps({
        "type": "response.created", "sequence_number": 0, "response": {
            "id": "resp_" + "a" * 48, "object": "response", "status": "in_progress",
            "model": "gpt-4o", "output": [], "instructions": "You are terse. " * 20}}) + b"\n\n"

    def sniff() -> str | None:
        return ResponseIdSniffer().feed(created)
    best = min(timeit.repeat(sniff, number=20_000, repeat=5)) / 20_000
    print(f"response id from a stream's first event ({len(created)} bytes): "
          f"{best * 1e6:.2f} µs per V2 Responses stream")


def resources(base_url: str, weight: int | None) -> list[dict[str, Any]]:
    stable = route("bench", [BENCH_MODEL], "bench", 100)
    if weight is not None:
        stable["spec"]["canary"] = {"pipeline": "bench-v2", "weight": weight}
    return [pipeline("bench", base_url), pipeline("bench-v2", base_url), stable]


async def end_to_end(quick: bool) -> None:
    cores = Cores.choose()
    duration, rounds, saturation = (3.0, 2, 3.0) if quick else (10.0, 4, 4.0)
    upstream = UpstreamProcess(cores.load)
    pin_self(cores.load)
    print(f"\nend to end: {cores.describe()}; non-streaming chat; all configs' proxies up at "
          f"once (idle ones cost nothing); saturation: {CONNECTIONS} connections, {rounds} "
          f"rounds of {saturation:g} s per config, configs interleaved (order reversed every "
          f"round), median and range of the rounds; added latency at {RATE:g} req/s open loop, "
          f"{duration:g} s per side in {rounds} interleaved rounds. The request is always the "
          "same, so at weight 50 its one key lands on one version: what differs is the "
          "assignment work, not which pool answers")
    try:
        async with AsyncExitStack() as stack:
            proxies = {label: await stack.enter_async_context(
                fresh_proxy(resources(upstream.base_url, weight), cores.proxy))
                for label, weight in CONFIGS}
            rates: dict[str, list[float]] = {label: [] for label in proxies}
            failed = dict.fromkeys(proxies, 0)
            p99s: dict[str, list[float]] = {label: [] for label in proxies}
            for n in range(rounds):
                order = list(proxies) if n % 2 == 0 else list(reversed(proxies))
                for label in order:
                    port = proxies[label].port
                    sat = await closed_loop(HOST, port, post_request(HOST, port, PATH,
                                                                     chat_body()),
                                            CONNECTIONS, duration=saturation)
                    rates[label].append(sat.rate)
                    p99s[label].append(summary_ms(sat.latencies)["p99"])
                    failed[label] += sat.failed
            print(f"{'config':>18} | {'req/s median (range)':>24} | {'sat. p99 ms median':>18} | "
                  f"{'added p50/p99 ms':>16} | failed")
            for label, proxy in proxies.items():
                paced = await _compare(Endpoints(upstream.port, proxy.port), RATE, duration,
                                       False, rounds)
                r = sorted(rates[label])
                print(f"{label:>18} | {statistics.median(r):>7,.0f} ({r[0]:,.0f}-{r[-1]:,.0f})"
                      f"{'':>4} | {statistics.median(p99s[label]):>18.2f} | "
                      f"{paced['added_p50_ms']:>7.3f} / {paced['added_p99_ms']:<6.3f} | "
                      f"{failed[label] + paced['proxy']['failed']}", flush=True)
    finally:
        upstream.stop()


if __name__ == "__main__":
    quick = "--quick" in sys.argv[1:]
    print(f"conditions: {platform.python_implementation()} {platform.python_version()}")
    micro()
    asyncio.run(end_to_end(quick))
