"""Benchmark: vpipe's pooled upstream client against aiohttp.ClientSession, one core each side.

A minimal keep-alive upstream (raw asyncio + httptools, fixed ~300-byte JSON answer) runs in a
separate process pinned to core 1; this process is pinned to core 0 and drives N POST requests
from C concurrent workers through (a) `UpstreamPool` and (b) `aiohttp.ClientSession`, both on
uvloop. It prints throughput and p50/p99 latency for each, and the conditions; it asserts
nothing. Run: `.venv/bin/python bench/bench_upstream_client.py [--requests N] [--concurrency C]`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from multiprocessing.connection import Connection as Pipe
from typing import NamedTuple, cast

import aiohttp
import httptools
import uvloop

from vpipe_proxy.upstream_client import UpstreamPool

RESPONSE_BODY = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,'
    b'"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"Hello! This is a fixed benchmark answer."},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21},'
    b'"system_fingerprint":"fp_bench"}'
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(RESPONSE_BODY)).encode() + b"\r\n\r\n" + RESPONSE_BODY
)
REQUEST_BODY = (
    b'{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],'
    b'"max_tokens":16}'
)
HEADERS = [
    ("content-type", "application/json"),
    ("user-agent", "vpipe"),
    ("authorization", "Bearer sk-bench-0000000000000000"),
]


def pin(core: int) -> str:
    if hasattr(os, "sched_setaffinity") and core in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {core})
        return f"core {core}"
    return "unpinned"


# -- the upstream ---------------------------------------------------------------------------------


class _UpstreamProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:
        if self.transport is not None:
            self.transport.write(RESPONSE)


def run_upstream(pipe: Pipe, core: int) -> None:
    where = pin(core)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_UpstreamProtocol, "127.0.0.1", 0, backlog=1024)
        pipe.send((server.sockets[0].getsockname()[1], where))
        await loop.run_in_executor(None, pipe.recv)  # any message means stop
        server.close()

    uvloop.run(main())


# -- the clients ----------------------------------------------------------------------------------


class Result(NamedTuple):
    elapsed: float  # wall seconds
    cpu: float  # this process's CPU seconds: the client's own cost, whatever the upstream does
    latencies: list[int]  # ns per request


async def drive(
    call: Callable[[], Awaitable[None]], total: int, concurrency: int,
) -> Result:
    latencies: list[int] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        clock = time.perf_counter_ns
        while remaining > 0:
            remaining -= 1
            start = clock()
            await call()
            latencies.append(clock() - start)

    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(time.perf_counter() - started, time.process_time() - cpu, latencies)


async def bench_pool(url: str, total: int, concurrency: int, warmup: int) -> Result:
    pool = UpstreamPool(url, max_connections=concurrency)

    async def call() -> None:
        response = await pool.request("POST", "/chat/completions", HEADERS, REQUEST_BODY)
        try:
            body = await response.read()
        finally:
            response.release()
        if response.status != 200 or len(body) != len(RESPONSE_BODY):
            raise RuntimeError("unexpected upstream answer")

    try:
        await drive(call, warmup, concurrency)
        return await drive(call, total, concurrency)
    finally:
        await pool.close()


async def bench_aiohttp(
    url: str, total: int, concurrency: int, warmup: int,
) -> Result:
    connector = aiohttp.TCPConnector(limit=concurrency)
    endpoint = url + "/chat/completions"
    headers = dict(HEADERS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call() -> None:
            async with session.post(endpoint, data=REQUEST_BODY, headers=headers) as response:
                body = await response.read()
                if response.status != 200 or len(body) != len(RESPONSE_BODY):
                    raise RuntimeError("unexpected upstream answer")

        await drive(call, warmup, concurrency)
        return await drive(call, total, concurrency)


def report(name: str, result: Result) -> None:
    ordered = sorted(result.latencies)
    n = len(ordered)

    def pct(p: float) -> float:
        return ordered[min(n - 1, int(p * n))] / 1e6

    print(f"  {name:<22} {n / result.elapsed:>8,.0f} req/s   p50 {pct(0.50):6.3f} ms   "
          f"p99 {pct(0.99):6.3f} ms   client CPU {result.cpu / n * 1e6:5.1f} us/req   "
          f"({n} requests in {result.elapsed:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    upstream = ctx.Process(target=run_upstream, args=(theirs, 1), daemon=True)
    upstream.start()
    port, upstream_where = ours.recv()
    here = pin(0)
    url = f"http://127.0.0.1:{port}/v1"

    print("conditions:")
    print(f"  python {platform.python_version()} ({platform.python_implementation()}), "
          f"{platform.machine()}, {os.cpu_count()} cpus visible")
    print(f"  uvloop {metadata.version('uvloop')} on (both clients), aiohttp {metadata.version('aiohttp')}, "
          f"httptools {metadata.version('httptools')}")
    print(f"  benchmark process: {here}; upstream process: {upstream_where}")
    print(f"  {args.requests} POST requests per run, {args.concurrency} concurrent workers, "
          f"{args.warmup} warm-up requests, response body {len(RESPONSE_BODY)} bytes")
    try:
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no}:")
            report("vpipe UpstreamPool", uvloop.run(
                bench_pool(url, args.requests, args.concurrency, args.warmup)))
            report("aiohttp ClientSession", uvloop.run(
                bench_aiohttp(url, args.requests, args.concurrency, args.warmup)))
    finally:
        ours.send("stop")
        upstream.join(timeout=5)
        if upstream.is_alive():
            upstream.terminate()


if __name__ == "__main__":
    main()
