"""Shadow mode: V1 answers the client; a copy goes to V2 in the background to be compared.

Bounded: at most `limit` copies run at once and a copy that does not fit is dropped and counted,
so shadowing never queues in front of client traffic. Only what is needed for comparison is
kept; texts reach the diff log only when contents logging is switched on.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import orjson

from vpipe_proxy.errors import ProxyError
from vpipe_proxy.metrics import Metrics
from vpipe_proxy.modules import Call, Next, Reply
from vpipe_proxy.runtime import Runtime

log = logging.getLogger("vpipe.shadow")


@dataclass(frozen=True)
class Summary:
    """What two answers are compared on."""

    status: int
    seconds: float
    text: str = ""
    finish: str | None = None
    tools: tuple[str, ...] = ()
    output_tokens: int | None = None


def summarize(protocol: str, status: int, seconds: float, body: bytes) -> Summary:
    """The comparable parts of a whole reply in the client's protocol."""
    if status != 200:
        return Summary(status, seconds)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Summary(status, seconds)
    if not isinstance(data, dict):
        return Summary(status, seconds)
    if protocol == "anthropic-messages":
        blocks = data.get("content") or []
        return Summary(
            status, seconds,
            text="".join(b.get("text", "") for b in blocks if b.get("type") == "text"),
            finish=data.get("stop_reason"),
            tools=tuple(b.get("name", "") for b in blocks if b.get("type") == "tool_use"),
            output_tokens=(data.get("usage") or {}).get("output_tokens"))
    choices = data.get("choices") or [{}]
    message = choices[0].get("message") or {}
    return Summary(
        status, seconds, text=message.get("content") or "",
        finish=choices[0].get("finish_reason"),
        tools=tuple((c.get("function") or {}).get("name", "")
                    for c in message.get("tool_calls") or []),
        output_tokens=(data.get("usage") or {}).get("completion_tokens"))


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' word sets: linear time, fine on the event loop."""
    wa, wb = set(a.split()), set(b.split())
    if not wa and not wb:
        return 1.0
    return len(wa & wb) / len(wa | wb)


class ShadowRunner:
    """Runs shadow copies with bounded concurrency and records the comparison."""

    def __init__(self, metrics: Metrics, limit: int, log_sample: float,
                 log_contents: bool) -> None:
        self._metrics = metrics
        self._limit = limit
        self._sample = log_sample
        self._contents = log_contents
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def submit(self, runtime: Runtime, runner: Next, call: Call, v1: Summary) -> None:
        if len(self._tasks) >= self._limit:
            self._metrics.shadow_requests.labels(call.route, "dropped").inc()
            return
        runtime.enter()  # the copy keeps V2's instances alive across a reload
        task = asyncio.create_task(self._run(runtime, runner, call, v1))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, runtime: Runtime, runner: Next, call: Call, v1: Summary) -> None:
        started = time.perf_counter()
        try:
            reply: Reply = await runner(call)
            body = reply.body
            if reply.release is not None:
                reply.release()
            v2 = summarize(call.protocol, reply.status, time.perf_counter() - started, body)
        except ProxyError as e:
            v2 = Summary(e.status, time.perf_counter() - started)
        except Exception:
            self._metrics.shadow_requests.labels(call.route, "failed").inc()
            log.exception("shadow copy for route %s failed", call.route)
            return
        finally:
            runtime.exit()
        self._metrics.shadow_requests.labels(call.route, "sent").inc()
        self._record(call.route, v1, v2)

    def _record(self, route: str, v1: Summary, v2: Summary) -> None:
        m = self._metrics
        for aspect, same in (("status", v1.status == v2.status),
                             ("finish_reason", v1.finish == v2.finish),
                             ("tool_calls", v1.tools == v2.tools)):
            m.shadow_match.labels(route, aspect, "true" if same else "false").inc()
        score = similarity(v1.text, v2.text)
        m.shadow_similarity.labels(route).observe(score)
        m.shadow_latency_delta.labels(route).observe(v2.seconds - v1.seconds)
        if random.random() < self._sample:
            log.info("shadow diff %s", orjson.dumps(self._diff(route, v1, v2, score)).decode())

    def _diff(self, route: str, v1: Summary, v2: Summary, score: float) -> dict[str, Any]:
        def side(s: Summary) -> dict[str, Any]:
            text: Any = s.text if self._contents else {"redacted": True, "chars": len(s.text)}
            return {"status": s.status, "ms": round(s.seconds * 1000, 1), "finish": s.finish,
                    "tools": list(s.tools), "outputTokens": s.output_tokens, "text": text}

        return {"route": route, "similarity": round(score, 3), "v1": side(v1), "v2": side(v2)}

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
