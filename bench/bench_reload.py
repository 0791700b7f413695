"""Reload at 1,000 routes: what it costs in process, and what a running proxy shows under load.

In process: `load_resources` (YAML + models), `render` (validate + render), `Router(...)`, and
`ProxyServer.reloader.reload()` of a changed file end to end (warm-up off: no network).

Live: a `vpipe serve -f` process on the 1,000-route files with a short poll interval takes
open-loop traffic while the file is rewritten several times; each reload's time runs from the
atomic rename of the new file until `/readyz` reports the new revision, and every request sent
meanwhile is checked (any non-200 or lost request counts as failed).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import HOST, PATH, chat_body
from load import open_loop, post_request
from proxy_proc import ProxyProcess
from resources_gen import many_routes, models, write
from stats import summary_ms, table

from vpipe_api.document import CONFIGMAP_KEY, parse_document
from vpipe_api.loading import load_resources
from vpipe_api.render import render
from vpipe_proxy.routing import Router
from vpipe_proxy.server import ProxyServer
from vpipe_proxy.settings import Settings
from vpipe_proxy.sources import ConfigSource, DocumentFileSource, ResourceFilesSource

ROUTES = 1000
PIPELINES = 5
LIVE_MODEL = "model-500"  # an exact-name route in the middle of the priority order
POLL_INTERVAL = 0.05  # VPIPE_POLL_INTERVAL of the live proxy, seconds


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def _reload_times(source: ConfigSource, change: Callable[[int | None], None],
                        repeats: int) -> list[float]:
    """ms per `reloader.reload()` after each `change(k)`; warm-up off, so no network."""
    server = ProxyServer(Settings(warm_connections=0), source)
    times = []
    try:
        assert await server.reloader.reload()
        for k in range(repeats):
            change(k)
            started = time.perf_counter()
            swapped = await server.reloader.reload()
            times.append(_ms(started))
            assert swapped, "the changed source did not produce a new revision"
    finally:
        await server.stop()
    return times


async def in_process(base_url: str, repeats: int) -> dict[str, Any]:
    phases: dict[str, list[float]] = {name: [] for name in (
        "load_resources", "render", "router", "parse_document")}
    with tempfile.TemporaryDirectory() as tmp:
        files, configmap = Path(tmp) / "resources", Path(tmp) / "configmap"
        write_files = _writer(files, base_url, configmap=False)
        write_document = _writer(configmap, base_url, configmap=True)
        write_files(None)
        write_document(None)
        for _ in range(repeats):
            started = time.perf_counter()
            resources = load_resources([files])
            phases["load_resources"].append(_ms(started))
            started = time.perf_counter()
            document = render(resources.pipelines, resources.routes)
            phases["render"].append(_ms(started))
            started = time.perf_counter()
            Router(document.routes)
            phases["router"].append(_ms(started))
            raw = document.to_json()
            started = time.perf_counter()
            parse_document(raw)
            phases["parse_document"].append(_ms(started))
        phases["reload_files"] = await _reload_times(ResourceFilesSource([files]), write_files,
                                                     repeats)
        phases["reload_configmap"] = await _reload_times(DocumentFileSource(configmap),
                                                         write_document, repeats)
    summary = {name: {"median_ms": statistics.median(v), "min_ms": min(v), "max_ms": max(v)}
               for name, v in phases.items()}
    return {"routes": ROUTES, "pipelines": PIPELINES, "repeats": repeats, "phases": summary}


def _writer(directory: Path, base_url: str, configmap: bool) -> Callable[[int | None], None]:
    """Writes the 1,000-route config (changed by `k`) as YAML resources or a rendered config.json."""

    def write_config(k: int | None) -> None:
        docs = many_routes(ROUTES, base_url, pipelines=PIPELINES,
                           extra_models=() if k is None else (f"extra-{k}",))
        if not configmap:
            write(directory, docs)
            return
        pipelines, routes = models(docs)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / ".config.json.tmp").write_bytes(render(pipelines, routes).to_json())
        (directory / ".config.json.tmp").replace(directory / CONFIGMAP_KEY)

    return write_config


async def live(base_url: str, core: int | None, workdir: Path, *, reloads: int, rate: float,
               configmap: bool) -> dict[str, Any]:
    mode = "pod: --config-dir config.json" if configmap else "local: -f YAML files"
    directory = workdir / ("reload-configmap" if configmap else "reload-resources")
    write_config = _writer(directory, base_url, configmap)
    write_config(None)
    proxy = ProxyProcess(directory, core, workdir / f"{directory.name}.log",
                         env={"VPIPE_POLL_INTERVAL": str(POLL_INTERVAL)}, configmap=configmap)
    try:
        ready = await proxy.ready()
        idle_rss_mib = proxy.rss_kib() / 1024
        request = post_request(HOST, proxy.port, PATH, chat_body(LIVE_MODEL))
        gap = 1.0
        load = asyncio.create_task(open_loop(HOST, proxy.port, request, rate,
                                             gap * (reloads + 1)))
        windows: list[tuple[float, float]] = []
        reload_ms: list[float] = []
        proxy_ms: list[float] = []
        revision = ready["revision"]
        for k in range(reloads):
            await asyncio.sleep(gap)
            write_config(k)
            started = time.perf_counter()
            while True:
                status = await proxy.readyz()
                if status["revision"] != revision:
                    break
                if time.perf_counter() - started > 10:
                    raise RuntimeError(f"proxy did not reload within 10 s: {status}")
                await asyncio.sleep(0.002)
            windows.append((started, time.perf_counter()))
            reload_ms.append(_ms(started))
            proxy_ms.append(float(status["lastReload"]["durationMs"]))
            revision = status["revision"]
        result = await load
    finally:
        proxy.stop()
    during = [lat for sent, lat in zip(result.sent_at, result.latencies, strict=True)
              if any(a <= sent <= b for a, b in windows)]
    return {
        "mode": mode, "routes": ROUTES, "reloads": reloads, "rate": rate,
        "poll_interval_s": POLL_INTERVAL,
        "file_to_serving_ms": {"median": statistics.median(reload_ms), "max": max(reload_ms),
                               "all": reload_ms},
        "proxy_reload_ms": {"median": statistics.median(proxy_ms), "max": max(proxy_ms),
                            "all": proxy_ms},
        "requests": result.sent, "failed": result.failed, "statuses": result.statuses,
        "latency_all_ms": summary_ms(result.latencies),
        "latency_during_reload_ms": summary_ms(during),
        "idle_rss_mib": idle_rss_mib,
    }


def report(inproc: dict[str, Any], lives: list[dict[str, Any]]) -> str:
    p = inproc["phases"]
    first = table(
        f"Reload cost in process ({inproc['routes']:,} routes, {inproc['pipelines']} pipelines; "
        f"ms over {inproc['repeats']} runs)",
        ["phase", "median", "min", "max"],
        [["load_resources (YAML files -> models)", *p["load_resources"].values()],
         ["render (validate + render)", *p["render"].values()],
         ["Router(...) compile", *p["router"].values()],
         ["reload(), local mode: YAML files (-f)", *p["reload_files"].values()],
         ["parse_document (ConfigMap JSON)", *p["parse_document"].values()],
         ["reload(), pod mode: ConfigMap config.json", *p["reload_configmap"].values()]],
        ["reload() = Reloader.reload(): fingerprint + load + render/parse + build + swap",
         "warm-up off (no network); it runs on the event loop: requests wait meanwhile"],
    )

    def row(label: str, pick: Callable[[dict[str, Any]], object]) -> list[object]:
        return [label, *(pick(r) for r in lives)]

    def trio(s: dict[str, float]) -> str:
        return f"{s['p50']:.3f} / {s['p99']:.3f} / {s['max']:.3f}"

    second = table(
        f"Live reload under load ({ROUTES:,} routes, open loop "
        f"{lives[0]['rate']:g} req/s, {lives[0]['reloads']} reloads per mode)",
        ["figure", *(r["mode"] for r in lives)],
        [row("rename -> /readyz new revision, median ms", lambda r: r["file_to_serving_ms"]["median"]),
         row("rename -> /readyz new revision, max ms", lambda r: r["file_to_serving_ms"]["max"]),
         row("proxy's own reload time (readyz), median ms", lambda r: r["proxy_reload_ms"]["median"]),
         row("proxy's own reload time (readyz), max ms", lambda r: r["proxy_reload_ms"]["max"]),
         row("requests sent", lambda r: r["requests"]),
         row("failed requests", lambda r: r["failed"]),
         row("latency p50/p99/max whole run, ms", lambda r: trio(r["latency_all_ms"])),
         row("latency p50/p99/max during reloads, ms",
             lambda r: trio(r["latency_during_reload_ms"])),
         row("idle RSS with 1,000 routes, MiB", lambda r: r["idle_rss_mib"])],
        [f"VPIPE_POLL_INTERVAL={lives[0]['poll_interval_s']:g} s: rename->serving includes up "
         "to one poll interval of detection delay",
         "'during reloads' = requests sent between a rename and the new revision showing"],
    )
    return first + "\n" + second
