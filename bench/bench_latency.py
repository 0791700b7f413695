"""Latency the proxy adds over calling the upstream directly, at fixed (open-loop) rates.

Requests are sent on a fixed schedule whatever the answers do, and each request's latency runs
from the write of its bytes to the last byte of its answer (streams: to the first body byte,
i.e. the first SSE event). "direct" and "proxy" use the same generator, request and rate, and
run interleaved in rounds (direct, proxy, proxy, direct, ...) so that both see the same
background noise; percentiles are over all rounds pooled. "added" = proxy - direct at the same
percentile.

Control: "cross-core" calls a second fast upstream pinned to the proxy's core directly. It does
no proxy work, so its excess over "direct" is what waking a process on another (virtual) core
costs on this machine; the proxied path crosses cores four times per request, a direct call
none.
"""

from __future__ import annotations

from typing import Any

from harness import HOST, PATH, Endpoints, chat_body
from load import Result, open_loop, post_request
from stats import summary_ms, table


def _side(result: Result, first_chunk: bool) -> dict[str, Any]:
    lat = summary_ms(result.first_chunk if first_chunk else result.latencies)
    return {"p50_ms": lat["p50"], "p90_ms": lat["p90"], "p99_ms": lat["p99"],
            "p99_9_ms": lat["p99.9"], "max_ms": lat["max"], "samples": int(lat["n"]),
            "failed": result.failed, "late_sends": result.late_sends,
            "achieved_rate": result.rate}


async def _compare(endpoints: Endpoints, rate: float, duration: float, stream: bool,
                   rounds: int) -> dict[str, Any]:
    ports = {"direct": endpoints.upstream_port, "proxy": endpoints.proxy_port}
    if endpoints.control_port is not None:
        ports["cross_core"] = endpoints.control_port
    pooled = {side: Result() for side in ports}
    for i in range(rounds):
        order = list(ports) if i % 2 == 0 else list(reversed(ports))
        for side in order:
            request = post_request(HOST, ports[side], PATH, chat_body(stream=stream))
            pooled[side].merge(await open_loop(HOST, ports[side], request, rate,
                                               duration / rounds))
    sides = {side: _side(result, first_chunk=stream) for side, result in pooled.items()}
    direct, proxy = sides["direct"], sides["proxy"]
    return {"rate": rate, "duration_s": duration, "rounds": rounds, **sides,
            "added_p50_ms": proxy["p50_ms"] - direct["p50_ms"],
            "added_p99_ms": proxy["p99_ms"] - direct["p99_ms"]}


async def added_latency(endpoints: Endpoints, rates: tuple[float, ...], duration: float,
                        rounds: int) -> list[dict[str, Any]]:
    return [await _compare(endpoints, rate, duration, False, rounds) for rate in rates]


async def first_chunk(endpoints: Endpoints, rate: float, duration: float,
                      rounds: int) -> dict[str, Any]:
    return await _compare(endpoints, rate, duration, True, rounds)


def _rows(results: list[dict[str, Any]]) -> list[list[object]]:
    rows: list[list[object]] = []
    for r in results:
        control = r.get("cross_core")
        rows.append([
            f"{r['rate']:g} req/s", r["direct"]["p50_ms"], r["direct"]["p99_ms"],
            r["proxy"]["p50_ms"], r["proxy"]["p99_ms"], r["added_p50_ms"], r["added_p99_ms"],
            r["proxy"]["max_ms"],
            control["p50_ms"] if control else float("nan"),
            control["p99_ms"] if control else float("nan"),
            sum(r[s]["failed"] for s in ("direct", "proxy"))])
    return rows


_HEADER = ["rate", "direct p50", "direct p99", "proxy p50", "proxy p99", "added p50",
           "added p99", "proxy max", "x-core p50", "x-core p99", "failed"]


def _notes(results: list[dict[str, Any]]) -> list[str]:
    r = results[0]
    return [f"{r['duration_s']:g} s per side in {r['rounds']} interleaved rounds; percentiles "
            "pooled over rounds",
            "x-core = control: a direct call to an upstream copy pinned to the proxy's core "
            "(no proxy work)"]


def report_added(results: list[dict[str, Any]]) -> str:
    return table("Added latency, non-streaming (ms; open loop; write of request -> last byte)",
                 _HEADER, _rows(results), _notes(results))


def report_first_chunk(result: dict[str, Any]) -> str:
    return table("Time to first chunk, streaming (ms; open loop; write of request -> first "
                 "SSE event)", _HEADER, _rows([result]),
                 [*_notes([result]),
                  "the upstream sends its first event with the head, the next ones 2 ms apart"])
