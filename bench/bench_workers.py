"""Every core in gateway mode: `vpipe serve --workers N` with 1 and 2 workers, side by side.

`python bench/bench_workers.py [--duration S] [--workers 1,2] [--json PATH]` prints, per worker
count and generator (wrk when installed, and the project's Python generator):

- req/s at saturation (64 keep-alive connections, non-streamed chat completions to the fast
  upstream);
- CPU µs per request: user + system time of the whole process tree (supervisor, workers)
  over the requests answered; it should stay flat from 1 to 2 workers (the supervisor idles);
- how the kernel spread the load: requests per worker from the supervisor's /metrics;
- the hot-path cost of the metrics choice: one request's metric updates (a labelled counter
  and a histogram, `Metrics.request_done`) in the in-process registry the workers use, and in
  prometheus_client's multiprocess mode (values in mmap'd files), in ns.

Layout: the fast upstream and the generator share the last usable core; the proxy gets the
first N cores, or every core when there are not N + 1 of them (then it shares with the load,
throughput cannot scale, and the report says so). It asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import wrk
from conditions import Conditions, Cores, pin_self, unpin_self
from fast_upstream import UpstreamProcess
from harness import HOST, PATH, chat_body
from interference import Interference, tree_cpu_seconds
from load import closed_loop, http_get, post_request
from prometheus_client.parser import text_string_to_metric_families
from proxy_proc import ProxyProcess
from resources_gen import single_route, write
from stats import summary_ms, table

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 64

METRICS_SNIPPET = """
import time
from vpipe_proxy.metrics import Metrics
metrics = Metrics()
args = ("chat", "openai-v1", "v1", "provider", "openai-chat", 200, 0.0012)
for _ in range(2000):
    metrics.request_done(*args)
best = float("inf")
for _ in range(5):
    started = time.perf_counter()
    for _ in range(100_000):
        metrics.request_done(*args)
    best = min(best, (time.perf_counter() - started) / 100_000)
print(best * 1e9)
"""


def metrics_cost_ns() -> dict[str, float]:
    """ns per `Metrics.request_done` in the in-process registry and in multiprocess mode."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as mmap_dir:
        for mode, extra in (("in-process registry (what workers use)", {}),
                            ("multiprocess mode (mmap'd values)",
                             {"PROMETHEUS_MULTIPROC_DIR": mmap_dir})):
            env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            done = subprocess.run([sys.executable, "-c", METRICS_SNIPPET], env={**env, **extra},
                                  capture_output=True, text=True, check=True, timeout=120)
            out[mode] = float(done.stdout.strip())
    return out


def per_worker_requests(exposition: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name == "vpipe_requests_total":
                worker = s.labels.get("worker", "0")
                counts[worker] = counts.get(worker, 0.0) + s.value
    return counts


def proxy_cores(workers: int, usable: list[int], load: int | None) -> set[int] | None:
    if load is None:
        return None
    others = [c for c in usable if c != load]
    return set(others[:workers]) if len(others) >= workers else set(usable)


async def measure(workers: int, work: Path, cores: Cores, usable: list[int],
                  duration: float) -> list[dict[str, Any]]:
    pinned = proxy_cores(workers, usable, cores.load)
    if pinned is not None:  # the proxy's processes inherit this affinity
        os.sched_setaffinity(0, pinned)
    proxy = ProxyProcess(work / "resources", None, work / f"proxy-{workers}.log",
                         env={"VPIPE_WORKERS": str(workers)})
    pin_self(cores.load)
    rows: list[dict[str, Any]] = []
    try:
        await proxy.ready()
        request = post_request(HOST, proxy.port, PATH, chat_body())
        await closed_loop(HOST, proxy.port, request, 8, total=2000)  # warm pools on each worker
        shared = pinned is not None and cores.load in pinned
        where = ("unpinned" if pinned is None else
                 f"cores {sorted(pinned)}" + (" (shared with the load)" if shared else ""))
        generators: list[str] = ["python"] + (["wrk"] if wrk.available() else [])
        for generator in generators:
            _, before_text = await http_get(HOST, proxy.admin_port, "/metrics")
            before = per_worker_requests(before_text.decode())
            cpu = tree_cpu_seconds(proxy.pid)
            if generator == "python":
                result = await closed_loop(HOST, proxy.port, request, CONNECTIONS,
                                           duration=duration)
                lat = summary_ms(result.latencies)
                rate, done, failed = result.rate, result.completed, result.failed
                p50, p99 = lat["p50"], lat["p99"]
            else:
                w = await asyncio.to_thread(wrk.run, f"http://{HOST}:{proxy.port}{PATH}",
                                            chat_body(), connections=CONNECTIONS,
                                            duration=duration, core=cores.load)
                rate, done, failed = w.rate, w.requests, w.non_2xx + w.socket_errors
                p50, p99 = w.p50_ms, w.p99_ms
            cpu = tree_cpu_seconds(proxy.pid) - cpu
            _, after_text = await http_get(HOST, proxy.admin_port, "/metrics")
            after = per_worker_requests(after_text.decode())
            spread = {k: int(after.get(k, 0) - before.get(k, 0)) for k in sorted(after)}
            rows.append({"workers": workers, "generator": generator, "proxy_cores": where,
                         "rate": rate, "requests": done, "failed": failed, "cpu_s": cpu,
                         "cpu_us_per_request": cpu / max(done, 1) * 1e6, "p50_ms": p50,
                         "p99_ms": p99, "per_worker": spread})
    finally:
        proxy.stop()
        unpin_self()
    return rows


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    cores = Cores.choose()
    try:
        usable = sorted(os.sched_getaffinity(0))
    except AttributeError:
        usable = []
    conditions = Conditions.collect(cores, ROOT)
    if cores.load is not None:
        cores = Cores(cores.proxy, usable[-1])
    noise = Interference()
    upstream = UpstreamProcess(cores.load)
    results: dict[str, Any] = {"duration_s": args.duration, "rows": []}
    try:
        with tempfile.TemporaryDirectory(prefix="vpipe-workers-") as tmp:
            work = Path(tmp)
            write(work / "resources", single_route(upstream.base_url))
            for workers in args.workers:
                with noise.section(f"{workers} workers"):
                    results["rows"] += await measure(workers, work, cores, usable, args.duration)
    finally:
        upstream.stop()
    with noise.section("metrics micro-benchmark"):
        results["metrics_ns"] = metrics_cost_ns()
    results["conditions"] = conditions.as_dict()
    results["interference"] = {"foreign_cpu_percent_of_a_core": noise.sections,
                               "noisy_sections": noise.noisy()}
    return results


def report(results: dict[str, Any]) -> str:
    rows = results["rows"]
    parts = [table(
        f"Saturation by worker count ({CONNECTIONS} keep-alive connections, "
        f"{results['duration_s']:g} s each)",
        ["workers", "generator", "proxy on", "req/s", "requests", "failed", "CPU µs/req",
         "p50 ms", "p99 ms", "requests per worker"],
        [[r["workers"], r["generator"], r["proxy_cores"], r["rate"], r["requests"], r["failed"],
          r["cpu_us_per_request"], r["p50_ms"], r["p99_ms"],
          " ".join(f"{k}:{v}" for k, v in r["per_worker"].items())] for r in rows],
        ["CPU = user + system of the supervisor, its workers and helpers over requests answered",
         "fast upstream and generator pinned to the last usable core"])]
    base = {r["generator"]: r for r in rows if r["workers"] == 1}
    ratios = [[r["generator"], r["workers"], r["rate"] / base[r["generator"]]["rate"],
               r["cpu_us_per_request"] / base[r["generator"]]["cpu_us_per_request"]]
              for r in rows if r["workers"] != 1 and r["generator"] in base]
    if ratios:
        parts.append(table("Against 1 worker", ["generator", "workers", "req/s ratio", "CPU/req ratio"],
                           ratios, ["target: CPU/req ratio ≈ 1 (flat); req/s ratio ≈ workers when each "
                                    "worker has a core of its own and the load another"]))
    ns = results["metrics_ns"]
    parts.append(table("Metric updates of one request (Metrics.request_done: counter + histogram)",
                       ["registry", "ns"], [[k, v] for k, v in ns.items()]))
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run; default 8")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--json", type=Path, default=ROOT / ".bench" / "workers.json")
    args = parser.parse_args()
    args.workers = [int(w) for w in args.workers.split(",")]
    started = time.monotonic()
    results = asyncio.run(main_async(args))
    print(report(results))
    print("\nconditions:")
    for key, value in results["conditions"].items():
        print(f"  {key.replace('_', ' ')}: {value}")
    usable = results["conditions"]["usable_cpus"]
    if usable < max(args.workers) + 1:
        print(f"  NOTE: {usable} usable cores: with {max(args.workers)} workers the proxy shares "
              "a core with the upstream and generator, so req/s cannot scale here; CPU µs per "
              "request still compares")
    print(f"  other processes' CPU, % of a core per section: "
          f"{results['interference']['foreign_cpu_percent_of_a_core']}")
    if results["interference"]["noisy_sections"]:
        print(f"  WARNING: other processes used > 5 % of a core during "
              f"{sorted(results['interference']['noisy_sections'])}: rerun on a quiet machine")
    print(f"  took {time.monotonic() - started:.0f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
