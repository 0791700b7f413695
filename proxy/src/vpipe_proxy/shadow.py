"""Shadow mode: V1 answers the client; a copy goes to V2 in the background to be compared.

Bounded: at most `limit` copies run at once and a copy that does not fit is dropped and counted,
so shadowing never queues in front of client traffic. Only what is needed for comparison is
kept; texts and tool arguments reach the diff log only when contents logging is switched on.

Streams are shadowed too: V1's stream reaches the client untouched while its bytes are kept
aside (a list append per chunk, no parsing on the client's path); once it ends, V2 gets the same
streaming request in the background, its stream is consumed as it comes, and both are
reassembled (`answer_summary`) into the same `Summary` a whole reply gives, plus the time to
the first chunk. A V1 stream the client abandoned is counted `incomplete` and not compared.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from vpipe_proxy.answer_summary import Answer, StreamSummary, ToolCall, answer_of
from vpipe_proxy.errors import ProxyError
from vpipe_proxy.metrics import Metrics
from vpipe_proxy.modules import Call, Next, Reply
from vpipe_proxy.runtime import Runtime

log = logging.getLogger("vpipe.shadow")


@dataclass
class V1Stream:
    """V1's streamed answer as the client got it, filled in by the front end as it passes:
    the bytes (kept, not parsed), when the first chunk and the end went out, and the status
    (the in-band error's when the stream broke after its headers)."""

    started: float
    chunks: list[bytes] = field(default_factory=list)
    status: int = 200
    first_chunk: float | None = None  # seconds from `started`
    seconds: float = 0.0

    def summary(self, protocol: str) -> Summary:
        summary = summarize_stream(protocol, self.status, self.seconds, self.chunks,
                                   self.first_chunk)
        self.chunks = []  # the bytes are not needed while V2 runs
        return summary


@dataclass(frozen=True)
class Summary:
    """What two answers are compared on."""

    status: int
    seconds: float
    text: str = ""
    finish: str | None = None
    tools: tuple[ToolCall, ...] = ()
    output_tokens: int | None = None
    first_chunk: float | None = None  # streams only: seconds to the first chunk

    @classmethod
    def of(cls, status: int, seconds: float, answer: Answer | None,
           first_chunk: float | None = None) -> Summary:
        """An answer that failed (None) is compared as a 502, as its client saw an error."""
        if answer is None:
            return cls(502 if status == 200 else status, seconds, first_chunk=first_chunk)
        return cls(status, seconds, answer.text, answer.finish, answer.tools,
                   answer.output_tokens, first_chunk)


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
    return Summary.of(status, seconds, answer_of(protocol, data))


def summarize_stream(protocol: str, status: int, seconds: float, chunks: list[bytes],
                     first_chunk: float | None = None) -> Summary:
    """The comparable parts of a streamed reply (its SSE bytes, in the client's protocol).

    An in-band error event (the stream broke after its headers) makes the status 502.
    """
    if status != 200:
        return Summary(status, seconds, first_chunk=first_chunk)
    reader = StreamSummary(protocol)
    for chunk in chunks:
        reader.feed(chunk)
    return Summary.of(status, seconds, reader.result(), first_chunk)


def _names(summary: Summary) -> tuple[str, ...]:
    return tuple(name for name, _ in summary.tools)


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

    def submit(self, runtime: Runtime, runner: Next, call: Call, v1: Summary | V1Stream) -> None:
        """Run `call` on V2 in the background (or drop it) and compare it with V1's answer."""
        if len(self._tasks) >= self._limit:
            self._metrics.shadow_requests.labels(call.route, "dropped").inc()
            return
        runtime.enter()  # the copy keeps V2's instances alive across a reload
        task = asyncio.create_task(self._run(runtime, runner, call, v1))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def skipped(self, route: str) -> None:
        """The request continues a provider-side thread: not copied (see the metric's help)."""
        self._metrics.shadow_requests.labels(route, "skipped").inc()

    def incomplete(self, route: str) -> None:
        """V1's stream did not finish (the client went away): nothing to compare."""
        self._metrics.shadow_requests.labels(route, "incomplete").inc()

    async def _run(self, runtime: Runtime, runner: Next, call: Call,
                   first: Summary | V1Stream) -> None:
        started = time.perf_counter()
        try:
            # V1's stream is parsed here, off the client's path.
            v1 = first.summary(call.protocol) if isinstance(first, V1Stream) else first
            v2 = await self._v2(runner, call, started)
        except Exception:
            self._metrics.shadow_requests.labels(call.route, "failed").inc()
            log.exception("shadow copy for route %s failed", call.route)
            return
        finally:
            runtime.exit()
        # An error answer (status, or a stream that broke) is still compared: the status
        # mismatch is the finding, and `failed` says V2 could not answer.
        result = "sent" if v2.status == 200 else "failed"
        self._metrics.shadow_requests.labels(call.route, result).inc()
        self._record(call.route, v1, v2)

    @staticmethod
    async def _v2(runner: Next, call: Call, started: float) -> Summary:
        """V2's answer to `call`, a stream consumed to its end as it comes (nothing kept but
        what the comparison needs)."""
        first: float | None = None
        try:
            reply: Reply = await runner(call)
            try:
                if reply.chunks is None:
                    return summarize(call.protocol, reply.status,
                                     time.perf_counter() - started, reply.body)
                reader = StreamSummary(call.protocol)
                async for chunk in reply.chunks:
                    if first is None and chunk:
                        first = time.perf_counter() - started
                    reader.feed(chunk)
                answer = reader.result() if reply.status == 200 else None
                return Summary.of(reply.status, time.perf_counter() - started, answer, first)
            finally:
                aclose = getattr(reply.chunks, "aclose", None)
                if aclose is not None:
                    await aclose()
                if reply.release is not None:
                    reply.release()
        except ProxyError as e:  # before its headers or mid-stream
            return Summary(e.status, time.perf_counter() - started, first_chunk=first)

    def _record(self, route: str, v1: Summary, v2: Summary) -> None:
        m = self._metrics
        for aspect, same in (("status", v1.status == v2.status),
                             ("finish_reason", v1.finish == v2.finish),
                             ("tool_calls", _names(v1) == _names(v2)),
                             ("tool_arguments", v1.tools == v2.tools)):
            m.shadow_match.labels(route, aspect, "true" if same else "false").inc()
        score = similarity(v1.text, v2.text)
        m.shadow_similarity.labels(route).observe(score)
        m.shadow_latency_delta.labels(route).observe(v2.seconds - v1.seconds)
        if v1.first_chunk is not None and v2.first_chunk is not None:
            m.shadow_first_chunk_delta.labels(route).observe(v2.first_chunk - v1.first_chunk)
        if v1.output_tokens and v2.output_tokens is not None:
            m.shadow_tokens_ratio.labels(route).observe(v2.output_tokens / v1.output_tokens)
        if random.random() < self._sample:
            log.info("shadow diff %s", orjson.dumps(self._diff(route, v1, v2, score)).decode())

    def _diff(self, route: str, v1: Summary, v2: Summary, score: float) -> dict[str, Any]:
        def side(s: Summary) -> dict[str, Any]:
            text: Any = s.text if self._contents else {"redacted": True, "chars": len(s.text)}
            out = {"status": s.status, "ms": round(s.seconds * 1000, 1), "finish": s.finish,
                   "tools": list(_names(s)), "outputTokens": s.output_tokens, "text": text}
            if s.first_chunk is not None:
                out["firstChunkMs"] = round(s.first_chunk * 1000, 1)
            if self._contents:  # arguments are contents too
                out["toolArguments"] = [arguments for _, arguments in s.tools]
            return out

        return {"route": route, "similarity": round(score, 3), "v1": side(v1), "v2": side(v2)}

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
