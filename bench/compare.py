"""One-command comparison: vpipe next to nginx (plain reverse proxy) and direct, in one run.

`python bench/compare.py [--duration S] [--requests N] [--json PATH]` prints, in about two
minutes, figures that travel between machines because each is divided by a reference measured
in the same run on the same core:

- CPU per request at saturation (user + system time of the proxy's process tree divided by the
  requests it answered), vpipe ÷ nginx, with wrk and with the project's Python generator;
- added latency at 500 req/s (open loop) over direct, vpipe's next to nginx's;
- added time to first streamed event with 1 and 10 concurrent streams;
- syscalls per request (`strace -c -f` attached over a fixed request count), by kind;
- Python function calls per request through vpipe (`count_calls.py`);
- absolute req/s, named with the machine, after the ratios.

Layout as in `run.py`: proxy under test (vpipe or nginx, never both at once under load) on core
0; fast upstream and generator on core 1. It asserts nothing. nginx comes from Debian's
`nginx-light` (`apt-get install nginx-light wrk strace`); sections whose tool is missing say so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import wrk
from conditions import Conditions, Cores, pin_self
from fast_upstream import UpstreamProcess
from harness import HOST, PATH, chat_body
from interference import Interference, tree_cpu_seconds, tree_pids
from load import Result, closed_loop, open_loop, post_request
from nginx_proc import NginxProcess
from proxy_proc import ProxyProcess
from resources_gen import single_route, write
from stats import summary_ms, table

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 64
TARGETS = ("direct", "nginx", "vpipe")


class Targets:
    """Ports and process ids of the three ways to reach the fast upstream."""

    def __init__(self, upstream: UpstreamProcess, nginx: NginxProcess | None,
                 vpipe: ProxyProcess) -> None:
        self.ports = {"direct": upstream.port, "vpipe": vpipe.port}
        self.pids = {"direct": upstream.pid, "vpipe": vpipe.pid}
        if nginx is not None:
            self.ports["nginx"] = nginx.port
            self.pids["nginx"] = nginx.pid

    def names(self) -> list[str]:
        return [t for t in TARGETS if t in self.ports]

    def request(self, target: str, *, stream: bool = False) -> bytes:
        return post_request(HOST, self.ports[target], PATH, chat_body(stream=stream))


async def _with_cpu(pid: int, run: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    before = tree_cpu_seconds(pid)
    result = await run()
    return result, tree_cpu_seconds(pid) - before


async def saturation(targets: Targets, duration: float, load_core: int | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for target in targets.names():
        pid, port = targets.pids[target], targets.ports[target]

        async def python_load(port: int = port, target: str = target) -> Result:
            return await closed_loop(HOST, port, targets.request(target), CONNECTIONS,
                                     duration=duration)

        result, cpu = await _with_cpu(pid, python_load)
        lat = summary_ms(result.latencies)
        rows.append({"target": target, "generator": "python", "rate": result.rate,
                     "requests": result.completed, "failed": result.failed, "cpu_s": cpu,
                     "cpu_us_per_request": cpu / max(result.completed, 1) * 1e6,
                     "p50_ms": lat["p50"], "p99_ms": lat["p99"]})
        if wrk.available():
            url = f"http://{HOST}:{port}{PATH}"

            async def wrk_load(url: str = url) -> wrk.WrkResult:
                return await asyncio.to_thread(wrk.run, url, chat_body(), connections=CONNECTIONS,
                                               duration=duration, core=load_core)

            w, cpu = await _with_cpu(pid, wrk_load)
            rows.append({"target": target, "generator": "wrk", "rate": w.rate,
                         "requests": w.requests, "failed": w.non_2xx + w.socket_errors,
                         "cpu_s": cpu, "cpu_us_per_request": cpu / max(w.requests, 1) * 1e6,
                         "p50_ms": w.p50_ms, "p99_ms": w.p99_ms})
    return rows


async def latency(targets: Targets, *, rate: float, duration: float, rounds: int,
                  stream: bool) -> dict[str, dict[str, float]]:
    """Percentiles per target, interleaved rounds (machine drift spreads over every target)."""
    pooled = {t: Result() for t in targets.names()}
    for i in range(rounds):
        order = targets.names() if i % 2 == 0 else list(reversed(targets.names()))
        for target in order:
            pooled[target].merge(await open_loop(HOST, targets.ports[target],
                                                 targets.request(target, stream=stream), rate,
                                                 duration / rounds))
    out: dict[str, dict[str, float]] = {}
    for target, result in pooled.items():
        lat = summary_ms(result.first_chunk if stream else result.latencies)
        out[target] = {"p50_ms": lat["p50"], "p99_ms": lat["p99"], "n": lat["n"],
                       "failed": float(result.failed)}
    return out


async def concurrent_streams(targets: Targets, *, streams: int, duration: float,
                             rounds: int) -> dict[str, dict[str, float]]:
    """Time to first event with `streams` connections streaming back to back."""
    pooled = {t: Result() for t in targets.names()}
    for i in range(rounds):
        order = targets.names() if i % 2 == 0 else list(reversed(targets.names()))
        for target in order:
            pooled[target].merge(await closed_loop(HOST, targets.ports[target],
                                                   targets.request(target, stream=True), streams,
                                                   duration=duration / rounds))
    return {t: {"p50_ms": summary_ms(r.first_chunk)["p50"], "p99_ms": summary_ms(r.first_chunk)["p99"],
                "n": float(len(r.first_chunk)), "failed": float(r.failed)}
            for t, r in pooled.items()}


_STRACE_ROW = re.compile(r"^\s*[0-9.]+\s+[0-9.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")
_SEND = {"write", "writev", "sendto", "sendmsg", "sendmmsg"}
_RECV = {"read", "readv", "recvfrom", "recvmsg", "recvmmsg"}


def parse_strace_summary(text: str) -> dict[str, int]:
    """`strace -c` summary table -> calls per syscall name."""
    calls: dict[str, int] = {}
    for line in text.splitlines():
        match = _STRACE_ROW.match(line)
        if match and match.group(2) != "total":
            calls[match.group(2)] = int(match.group(1))
    return calls


async def syscalls(targets: Targets, requests: int) -> dict[str, dict[str, float]] | str:
    """Syscalls per request by the proxy's process tree over `requests` non-streamed requests."""
    strace = shutil.which("strace")
    if strace is None:
        return "strace not installed (apt-get install strace)"
    out: dict[str, dict[str, float]] = {}
    for target in targets.names():
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "strace.txt"
            attach = [a for pid in tree_pids(targets.pids[target]) for a in ("-p", str(pid))]
            proc = await asyncio.create_subprocess_exec(
                strace, "-c", "-f", "-o", str(log), *attach, stderr=asyncio.subprocess.DEVNULL)
            await asyncio.sleep(1.0)  # attach to every thread before the load starts
            result = await closed_loop(HOST, targets.ports[target], targets.request(target), 8,
                                       total=requests)
            proc.send_signal(signal.SIGINT)
            await asyncio.wait_for(proc.wait(), 30)
            calls = parse_strace_summary(await asyncio.to_thread(log.read_text))
        n = max(result.completed, 1)
        out[target] = {
            "total": sum(calls.values()) / n,
            "send": sum(v for k, v in calls.items() if k in _SEND) / n,
            "receive": sum(v for k, v in calls.items() if k in _RECV) / n,
            "epoll": sum(v for k, v in calls.items() if k.startswith("epoll")) / n,
            "other": sum(v for k, v in calls.items()
                         if k not in _SEND | _RECV and not k.startswith("epoll")) / n,
        }
    return out


async def calls_per_request(resources: Path, workdir: Path, core: int | None,
                            requests: int) -> dict[str, float]:
    """Python function calls (and C calls from Python) per non-streamed request through vpipe,
    counted by a profile hook in a separate proxy process (`count_calls.py`)."""
    counts = workdir / "calls.json"
    proxy = ProxyProcess(resources, core, workdir / "calls-proxy.log",
                         launcher=[sys.executable, str(Path(__file__).with_name("count_calls.py")),
                                   str(counts)])

    async def snapshot() -> dict[str, int]:
        counts.unlink(missing_ok=True)
        proxy.proc.send_signal(signal.SIGUSR1)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if counts.exists() and counts.stat().st_size:
                return dict(json.loads(counts.read_text()))
        raise RuntimeError("the counting proxy wrote no snapshot")

    try:
        await proxy.ready()
        request = post_request(HOST, proxy.port, PATH, chat_body())
        await closed_loop(HOST, proxy.port, request, 8, total=500)  # lazy imports, pools
        before = await snapshot()
        result = await closed_loop(HOST, proxy.port, request, 8, total=requests)
        after = await snapshot()
    finally:
        proxy.stop()
    n = max(result.completed, 1)
    return {"python": (after["call"] - before["call"]) / n,
            "c": (after["c_call"] - before["c_call"]) / n, "requests": float(n)}


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def summarize(results: dict[str, Any]) -> list[list[object]]:
    """The headline: vpipe over nginx for each figure, both generators."""
    rows: list[list[object]] = []
    sat = results["saturation"]
    for generator in ("wrk", "python"):
        by = {r["target"]: r for r in sat if r["generator"] == generator}
        if "vpipe" in by and "nginx" in by:
            rows.append([f"CPU µs per request ({generator})", by["vpipe"]["cpu_us_per_request"],
                         by["nginx"]["cpu_us_per_request"],
                         _ratio(by["vpipe"]["cpu_us_per_request"], by["nginx"]["cpu_us_per_request"]),
                         "<= 3x"])
            rows.append([f"req/s at saturation ({generator})", by["vpipe"]["rate"],
                         by["nginx"]["rate"], _ratio(by["vpipe"]["rate"], by["nginx"]["rate"]), ""])
    for key, label, target in (("latency_500", "added p50 ms at 500 req/s", "<= 2x"),
                               ("latency_500", "added p99 ms at 500 req/s", "vpipe <= 2 ms"),
                               ("ttft_1", "added first-event ms, 1 stream", "<= nginx + 0.3"),
                               ("ttft_10", "added first-event ms, 10 streams", "<= nginx + 0.3")):
        side = results.get(key)
        if not side or "nginx" not in side:
            continue
        q = "p99_ms" if "p99" in label else "p50_ms"
        direct = side["direct"][q]
        v, n = side["vpipe"][q] - direct, side["nginx"][q] - direct
        rows.append([label, v, n, _ratio(v, n), target])
    sys_ = results.get("syscalls")
    if isinstance(sys_, dict) and "nginx" in sys_:
        for kind in ("total", "send", "receive"):
            rows.append([f"syscalls per request ({kind})", sys_["vpipe"][kind], sys_["nginx"][kind],
                         _ratio(sys_["vpipe"][kind], sys_["nginx"][kind]),
                         "<= 4 each way" if kind != "total" else ""])
    return rows


def _latency_table(title: str, side: dict[str, dict[str, float]]) -> str:
    direct = side["direct"]
    return table(title, ["target", "p50 ms", "p99 ms", "added p50", "added p99", "samples", "failed"],
                 [[t, v["p50_ms"], v["p99_ms"], v["p50_ms"] - direct["p50_ms"],
                   v["p99_ms"] - direct["p99_ms"], int(v["n"]), int(v["failed"])]
                  for t, v in side.items()])


def report(results: dict[str, Any]) -> str:
    parts = [table("vpipe ÷ nginx, same run, same core (ratios travel; absolutes below do not)",
                   ["figure", "vpipe", "nginx", "ratio", "target"], summarize(results),
                   ["added = target - direct at the same percentile; ratio = vpipe ÷ nginx"])]
    parts.append(table(
        f"Saturation ({CONNECTIONS} keep-alive connections, {results['duration_s']:g} s each)",
        ["target", "generator", "req/s", "requests", "failed", "CPU s", "CPU µs/req", "p50 ms",
         "p99 ms"],
        [[r["target"], r["generator"], r["rate"], r["requests"], r["failed"], r["cpu_s"],
          r["cpu_us_per_request"], r["p50_ms"], r["p99_ms"]] for r in results["saturation"]],
        ["CPU = user + system of the target's process tree (for direct: the fast upstream's)",
         "proxy on its own core; upstream and generator share the other"]))
    for key, title in (("latency_500", "Non-streamed latency at 500 req/s (open loop)"),
                       ("ttft_1", "Time to first event, 1 stream (open loop, 20 streams/s)"),
                       ("ttft_10", "Time to first event, 10 concurrent streams (closed loop)")):
        if key in results:
            parts.append(_latency_table(title, results[key]))
    sys_ = results.get("syscalls")
    if isinstance(sys_, dict):
        parts.append(table(f"Syscalls per non-streamed request ({results['strace_requests']} "
                           "requests, 8 connections, strace -c -f)",
                           ["target", "total", "send", "receive", "epoll", "other"],
                           [[t, v["total"], v["send"], v["receive"], v["epoll"], v["other"]]
                            for t, v in sys_.items()],
                           ["counts include both sides of the proxy (client and upstream)"]))
    elif sys_:
        parts.append(f"\n== Syscalls: skipped: {sys_}")
    calls = results.get("calls")
    if calls:
        parts.append(table(f"Function calls per non-streamed request through vpipe "
                           f"({int(calls['requests'])} requests, profile hook)",
                           ["Python functions", "C functions called from Python"],
                           [[calls["python"], calls["c"]]],
                           ["the same on every machine for the same code and inputs"]))
    return "\n".join(parts)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    cores = Cores.choose()
    conditions = Conditions.collect(cores, ROOT)  # before this process pins itself
    noise = Interference()
    upstream = UpstreamProcess(cores.load)
    pin_self(cores.load)
    nginx: NginxProcess | None = None
    proxy: ProxyProcess | None = None
    results: dict[str, Any] = {"duration_s": args.duration, "strace_requests": args.requests}
    with tempfile.TemporaryDirectory(prefix="vpipe-compare-") as work:
        try:
            try:
                nginx = NginxProcess(upstream.port, cores.proxy)
                results["nginx"] = nginx.version
            except RuntimeError as e:
                print(f"nginx: skipped ({e}); ratios need it", file=sys.stderr)
            write(Path(work) / "resources", single_route(upstream.base_url))
            proxy = ProxyProcess(Path(work) / "resources", cores.proxy, Path(work) / "proxy.log")
            await proxy.ready()
            targets = Targets(upstream, nginx, proxy)
            for target in targets.names():  # warm every path: pools, caches, JIT-free but lazy imports
                await closed_loop(HOST, targets.ports[target], targets.request(target), 8, total=2000)
            with noise.section("saturation"):
                results["saturation"] = await saturation(targets, args.duration, cores.load)
            with noise.section("latency"):
                results["latency_500"] = await latency(targets, rate=500, duration=args.duration * 1.5,
                                                       rounds=3, stream=False)
                results["ttft_1"] = await latency(targets, rate=20, duration=args.duration,
                                                  rounds=2, stream=True)
                results["ttft_10"] = await concurrent_streams(targets, streams=10,
                                                              duration=args.duration, rounds=2)
            results["syscalls"] = await syscalls(targets, args.requests)
            results["calls"] = await calls_per_request(Path(work) / "resources", Path(work),
                                                       cores.proxy, min(args.requests, 2000))
        finally:
            if proxy is not None:
                proxy.stop()
            if nginx is not None:
                nginx.stop()
            upstream.stop()
    results["conditions"] = conditions.as_dict()
    results["interference"] = {"foreign_cpu_percent_of_a_core": noise.sections,
                               "noisy_sections": noise.noisy()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0,
                        help="seconds per saturation run (latency runs scale from it); default 8")
    parser.add_argument("--requests", type=int, default=5000,
                        help="requests per target counted under strace; default 5000")
    parser.add_argument("--json", type=Path, default=ROOT / ".bench" / "compare.json",
                        help="where to write every figure as JSON")
    args = parser.parse_args()
    started = time.monotonic()
    results = asyncio.run(main_async(args))
    print(report(results))
    print("\nconditions:")
    for key, value in results["conditions"].items():
        print(f"  {key.replace('_', ' ')}: {value}")
    print(f"  nginx: {results.get('nginx', 'not installed')}")
    noisy = results["interference"]["noisy_sections"]
    print(f"  other processes' CPU, % of a core per section: "
          f"{results['interference']['foreign_cpu_percent_of_a_core']}")
    if noisy:
        print(f"  WARNING: other processes used > 5 % of a core during {sorted(noisy)}: "
              "figures are skewed; rerun on a quiet machine")
    print(f"  took {time.monotonic() - started:.0f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
