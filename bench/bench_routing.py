"""Routing decision time in process, at 10 / 1,000 / 10,000 routes.

Routes are generated as resources and rendered with `vpipe_api.render.render` (exact names,
globs and a few regexes, distinct priorities), then compiled by `vpipe_proxy.routing.Router`.

- warm: the same model name every call (the router's per-model candidate cache answers)
- cold: a model name never seen before every call (a full candidate scan each time)
for `tail-*`, the lowest-priority route, and for a name no route matches.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from resources_gen import TAIL_ROUTE_PATTERN, many_routes, models
from stats import table

from vpipe_api.render import render
from vpipe_proxy.routing import Router

_PROTOCOL = "openai-chat"
_HEADERS: dict[str, str] = {}


def build_router(n: int) -> tuple[Router, float]:
    """A Router over `n` rendered routes, and how long rendering took (ms)."""
    pipelines, routes = models(many_routes(n, "http://127.0.0.1:9/v1"))
    started = time.perf_counter()
    document = render(pipelines, routes)
    render_ms = (time.perf_counter() - started) * 1000
    return Router(document.routes), render_ms


def _time_calls(route: Callable[..., object], names: list[str]) -> float:
    """Mean µs per `route(name, ...)` over `names`."""
    started = time.perf_counter_ns()
    for name in names:
        route(name, _PROTOCOL, "", _HEADERS)
    return (time.perf_counter_ns() - started) / len(names) / 1000


def _measure(router: Router, prefix: str, cold: bool, calls: int, repeats: int) -> float:
    """Median over `repeats` of the mean µs per decision."""
    samples = []
    for rep in range(repeats):
        if cold:
            names = [f"{prefix}{rep}-{i}" for i in range(calls)]
        else:
            names = [f"{prefix}warm"] * calls
            router.route(names[0], _PROTOCOL, "", _HEADERS)  # fill the cache entry
        samples.append(_time_calls(router.route, names))
    return statistics.median(samples)


def run(sizes: tuple[int, ...], *, quick: bool) -> list[dict[str, Any]]:
    results = []
    for n in sizes:
        router, render_ms = build_router(n)
        tail = router.route("tail-check", _PROTOCOL, "", _HEADERS)
        assert tail is not None, "bad fixture: tail-* matched nothing"
        assert tail.patterns[0].source == TAIL_ROUTE_PATTERN, "bad fixture: wrong route won"
        assert router.route("nomatch-check", _PROTOCOL, "", _HEADERS) is None, "bad fixture"
        fuzzy = sum(1 for r in router.routes for p in r.patterns if p.kind != "exact")
        warm_calls = 20_000 if quick else 200_000
        cold_calls = max(100, min(20_000, 2_000_000 // n)) // (4 if quick else 1)
        repeats = 3 if quick else 5
        row: dict[str, Any] = {"routes": n, "fuzzy_patterns": fuzzy, "render_ms": render_ms}
        for label, prefix in (("tail", "tail-"), ("none", "nomatch-")):
            row[f"warm_{label}_us"] = _measure(router, prefix, False, warm_calls, repeats)
            row[f"cold_{label}_us"] = _measure(router, prefix, True, cold_calls, repeats)
        row["cold_calls"] = cold_calls
        results.append(row)
    return results


def report(results: list[dict[str, Any]]) -> str:
    return table(
        "Routing decision time (µs per Router.route call, in process)",
        ["routes", "globs+regex", "warm tail-*", "warm no match", "cold tail-*", "cold no match"],
        [[r["routes"], r["fuzzy_patterns"], r["warm_tail_us"], r["warm_none_us"],
          r["cold_tail_us"], r["cold_none_us"]] for r in results],
        ["warm: same model each call (candidate cache hit); cold: a new model name each call",
         "tail-* = the lowest-priority route; median of repeats of the mean per call",
         "routes: every 4th a glob, every 100th a regex, rest exact; distinct priorities"],
    )
