"""vpipe benchmarks: `python bench/run.py [--quick] [--profile]`.

Prints each section's figures with the conditions they were measured under, then the figures
next to their targets, and writes everything as JSON to `.bench/results.json`. It asserts
nothing: a missed target is reported, not failed. `--quick` is a smoke run (< ~60 s) with short
durations and small request counts; its figures are noisier than a full run's.

Layout: the proxy (`vpipe serve`, a separate process) runs alone on one core; the fast upstream
(`fast_upstream.py`, another process) and this process's load generator share a second core.
The in-process benchmarks (routing, render, reload) run first, on the proxy's core.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import bench_latency
import bench_memory
import bench_reload
import bench_routing
import bench_throughput
import orjson
import profile_proxy
from conditions import Conditions, Cores, background_busy, pin_self
from fast_upstream import UpstreamProcess
from harness import Endpoints
from interference import Interference
from proxy_proc import ProxyProcess
from resources_gen import single_route, write
from stats import table

ROOT = Path(__file__).resolve().parent.parent
MIB_PER_MB = 1e6 / 2**20


def _durations(quick: bool) -> dict[str, Any]:
    if quick:
        return {"latency_s": 2.0, "latency_rounds": 2, "saturation_s": 2.0, "rss_batch": 10_000,
                "reloads": 2, "reload_repeats": 3}
    return {"latency_s": 10.0, "latency_rounds": 5, "saturation_s": 10.0, "rss_batch": 100_000,
            "reloads": 5, "reload_repeats": 7}


async def _network(cores: Cores, cfg: dict[str, Any], workdir: Path, profile: bool,
                   out: dict[str, Any], noise: Interference) -> None:
    upstream = UpstreamProcess(cores.load)
    # Control for the latency tests: the same upstream on the proxy's core, called directly.
    control = UpstreamProcess(cores.proxy) if cores.pinned else None
    pin_self(cores.load)
    try:
        resources = workdir / "resources"
        write(resources, single_route(upstream.base_url))
        proxy = ProxyProcess(resources, cores.proxy, workdir / "proxy.log")
        try:
            await proxy.ready()
            await asyncio.sleep(1.0)
            idle_kib = proxy.rss_kib()
            endpoints = Endpoints(upstream.port, proxy.port,
                                  control.port if control is not None else None)

            with noise.section("memory"):
                out["memory"] = await bench_memory.run(proxy, endpoints, idle_kib,
                                                       cfg["rss_batch"])
            print(bench_memory.report(out["memory"]), flush=True)

            with noise.section("added_latency"):
                out["added_latency"] = await bench_latency.added_latency(
                    endpoints, (50.0, 500.0), cfg["latency_s"], cfg["latency_rounds"])
            print(bench_latency.report_added(out["added_latency"]), flush=True)

            with noise.section("first_chunk"):
                out["first_chunk"] = await bench_latency.first_chunk(
                    endpoints, 50.0, cfg["latency_s"], cfg["latency_rounds"])
            print(bench_latency.report_first_chunk(out["first_chunk"]), flush=True)

            with noise.section("throughput"):
                out["throughput"] = await bench_throughput.run(
                    endpoints, duration=cfg["saturation_s"], load_core=cores.load)
            print(bench_throughput.report(out["throughput"]), flush=True)

            if profile:
                prof = await profile_proxy.run(proxy.pid, endpoints,
                                               duration=cfg["saturation_s"], core=cores.load,
                                               out_dir=ROOT / ".bench")
                if prof is None:
                    print("\n== Proxy profile: py-spy is not installed (pip install py-spy)")
                else:
                    out["profile"] = prof
                    print(profile_proxy.report(prof), flush=True)
        finally:
            proxy.stop()

        lives = []
        with noise.section("reload_live"):
            for configmap in (False, True):
                lives.append(await bench_reload.live(upstream.base_url, cores.proxy, workdir,
                                                     reloads=cfg["reloads"], rate=500.0,
                                                     configmap=configmap))
        out["reload_live"] = lives
    finally:
        upstream.stop()
        if control is not None:
            control.stop()


def _failures(r: dict[str, Any]) -> int:
    """Failed requests over every section (the reload test's are reported on their own too)."""
    total = sum(p["failed"] for p in r["memory"]["points"])
    for comparison in [*r["added_latency"], r["first_chunk"]]:
        total += sum(comparison[side]["failed"] for side in ("direct", "proxy"))
    total += sum(row["failed"] for row in r["throughput"]["rows"])
    total += sum(live["failed"] for live in r["reload_live"])
    return int(total)


def _verdict(ok: bool, miss: str) -> str:
    return "met" if ok else f"MISSED: {miss}"


def targets(r: dict[str, Any]) -> list[list[object]]:
    rows: list[list[object]] = []
    rate = r["throughput"]["proxy_rate"]
    rows.append(["throughput, non-streaming, one core", ">= 4,000 req/s",
                 f"{rate:,.0f} req/s ({r['throughput']['proxy_generator']})",
                 _verdict(rate >= 4000, f"{4000 - rate:,.0f} req/s short")])
    at500 = next(x for x in r["added_latency"] if x["rate"] == 500.0)
    for key, limit in (("added_p50_ms", 1.0), ("added_p99_ms", 2.0)):
        label = key.split("_")[1]
        rows.append([f"added latency {label} at 500 req/s", f"<= {limit:g} ms",
                     f"{at500[key]:.3f} ms",
                     _verdict(at500[key] <= limit, f"{at500[key] - limit:.3f} ms over")])
    fc = r["first_chunk"]
    for key in ("added_p50_ms", "added_p99_ms"):
        label = key.split("_")[1]
        rows.append([f"time to first chunk added, {label} (50 req/s)", "<= 1 ms",
                     f"{fc[key]:.3f} ms", _verdict(fc[key] <= 1.0, f"{fc[key] - 1.0:.3f} ms over")])
    at1000 = next(x for x in r["routing"] if x["routes"] == 1000)
    for kind in ("warm", "cold"):
        worst = max(at1000[f"{kind}_tail_us"], at1000[f"{kind}_none_us"])
        rows.append([f"routing decision, 1,000 routes, {kind} (worst case)", "<= 20 µs",
                     f"{worst:.2f} µs", _verdict(worst <= 20, f"{worst / 20:.1f}x the target")])
    idle_mb = r["memory"]["idle_mib"] / MIB_PER_MB
    rows.append(["idle RSS", "<= 60 MB", f"{idle_mb:.1f} MB ({r['memory']['idle_mib']:.1f} MiB)",
                 _verdict(idle_mb <= 60, f"{idle_mb - 60:.1f} MB over")])
    growth = r["memory"]["growth_last_batch_mib"]
    rows.append([f"RSS growth over the 2nd {r['memory']['batch']:,} requests", "flat (< 1 MiB)",
                 f"{growth:+.2f} MiB", _verdict(growth < 1.0, "grows")])
    for live in r["reload_live"]:
        median = live["file_to_serving_ms"]["median"]
        rows.append([f"reload 1,000 routes, {live['mode']}", "<= 200 ms, 0 failed",
                     f"{median:.0f} ms median (proxy {live['proxy_reload_ms']['median']:.0f} ms),"
                     f" {live['failed']} failed",
                     _verdict(median <= 200 and live["failed"] == 0,
                              f"{median - 200:.0f} ms over" if median > 200 else "failures")])
    return rows


async def main(quick: bool, profile: bool) -> dict[str, Any]:
    started = time.perf_counter()
    cores = Cores.choose()
    conditions = Conditions.collect(cores, ROOT)
    cfg = _durations(quick)
    print(f"vpipe benchmarks ({'quick smoke run' if quick else 'full run'})")
    print("\n".join("  " + line for line in conditions.lines()))
    busy = background_busy()
    print(f"  background CPU busy before the run (1 s sample, per core): {busy} %")
    if any(b > 10 for b in busy):
        print("  !! the machine is not idle: other processes compete for the cores; figures "
              "will be skewed")
    results: dict[str, Any] = {"mode": "quick" if quick else "full",
                               "conditions": conditions.as_dict(), "settings": cfg}

    noise = Interference()
    pin_self(cores.proxy)  # nothing else runs yet: in-process figures get the proxy's core
    with noise.section("routing"):
        results["routing"] = bench_routing.run((10, 1000, 10_000), quick=quick)
    print(bench_routing.report(results["routing"]), flush=True)
    with noise.section("reload_in_process"):
        results["reload_in_process"] = await bench_reload.in_process(
            "http://127.0.0.1:9/v1", cfg["reload_repeats"])

    workdir = ROOT / ".bench" / "work"  # generated resources and proxy logs of this run
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    await _network(cores, cfg, workdir, profile, results, noise)
    print(bench_reload.report(results["reload_in_process"], results["reload_live"]))

    failures = _failures(results)
    if failures:
        print(f"\n!! {failures} requests failed during the run: the figures above are not valid; "
              f"see the proxy logs in {workdir}")
    results["failed_requests_total"] = failures
    results["targets"] = targets(results)
    print(table("Targets", ["figure", "target", "measured", "verdict"], results["targets"],
                ["scale: LiteLLM proxy ~48 req/s on one core, +34 ms per request, +22 ms first "
                 "token, 333 MB idle; nginx plain proxy +0.2 ms"]))
    busy_after = background_busy()
    results["background_busy_pct"] = {"before": busy, "after": busy_after}
    results["foreign_cpu_pct"] = noise.sections
    print(f"\nCPU used by processes outside the benchmark, % of one core, per section: "
          f"{noise.sections}; background busy after the run: {busy_after} %")
    if noise.noisy():
        print(f"!! other processes used more than 5 % of a core during {sorted(noise.noisy())}: "
              "those figures are skewed; run again on a quiet machine")
    results["elapsed_s"] = time.perf_counter() - started
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run, under ~60 s")
    parser.add_argument("--profile", action="store_true",
                        help="also sample the saturated proxy with py-spy (if installed)")
    parser.add_argument("--output", type=Path, default=ROOT / ".bench" / "results.json",
                        help="where to write the JSON results (default .bench/results.json)")
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    try:
        import uvloop
    except ImportError:
        results = asyncio.run(main(args.quick, args.profile))
    else:
        results = uvloop.run(main(args.quick, args.profile))
    args.output.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 |
                                         orjson.OPT_SERIALIZE_NUMPY))
    print(f"\nresults written to {args.output} ({results['elapsed_s']:.0f} s)")
    sys.stdout.flush()


if __name__ == "__main__":
    cli()
