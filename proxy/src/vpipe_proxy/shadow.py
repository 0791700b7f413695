"""Shadow mode: V1 answers the client; a copy goes to V2 in the background to be compared.

Bounded: at most `limit` copies run at once and a copy that does not fit is dropped and counted,
so shadowing never queues in front of client traffic. Only what is needed for comparison is
kept; texts reach the diff log only when contents logging is switched on.

Streams are shadowed too: V1's stream reaches the client untouched while its bytes are kept
aside; once it ends, V2 gets the same streaming request in the background and both streams are
reassembled (text, finish reason, tool calls, tokens) into the same `Summary` a whole reply
gives. A V1 stream the client abandoned is counted `incomplete` and not compared.
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
from vpipe_proxy.sse import SSEDecoder

log = logging.getLogger("vpipe.shadow")


@dataclass
class V1Stream:
    """V1's streamed answer as the client got it: the bytes, kept as they pass (no parsing on
    the client's path), and its status (502 when it broke in-band)."""

    started: float
    chunks: list[bytes]
    status: int = 200
    seconds: float = 0.0

    def summary(self, protocol: str) -> Summary:
        return summarize_stream(protocol, self.status, self.seconds, self.chunks)


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
    return _summary_of(protocol, status, seconds, data)


def summarize_stream(protocol: str, status: int, seconds: float,
                     chunks: list[bytes]) -> Summary:
    """The comparable parts of a streamed reply (its SSE bytes, in the client's protocol).

    An in-band error event (the stream broke after its headers) makes the status 502.
    """
    if status != 200:
        return Summary(status, seconds)
    decoder = SSEDecoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)] + decoder.flush()
    datas = []
    for event in events:
        if event.data == "[DONE]":
            continue
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict):
            if event.event == "error" or data.get("type") == "error" or (
                    "error" in data and protocol == "openai-chat"):
                return Summary(502, seconds)
            datas.append(data)
    if protocol == "openai-responses":
        final = next((d["response"] for d in reversed(datas)
                      if d.get("type") in ("response.completed", "response.incomplete",
                                           "response.failed")
                      and isinstance(d.get("response"), dict)), None)
        return _summary_of(protocol, status, seconds, final) if final else Summary(502, seconds)
    if protocol == "anthropic-messages":
        return _anthropic_stream(status, seconds, datas)
    return _chat_stream(status, seconds, datas)


def _chat_stream(status: int, seconds: float, datas: list[dict[str, Any]]) -> Summary:
    text: list[str] = []
    tools: list[str] = []
    finish = tokens = None
    for data in datas:
        for choice in data.get("choices") or []:
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                text.append(delta["content"])
            for call in delta.get("tool_calls") or []:
                name = (call.get("function") or {}).get("name")
                if name:
                    tools.append(name)
            finish = choice.get("finish_reason") or finish
        usage = data.get("usage")
        if isinstance(usage, dict):
            tokens = usage.get("completion_tokens", tokens)
    return Summary(status, seconds, "".join(text), finish, tuple(tools), tokens)


def _anthropic_stream(status: int, seconds: float, datas: list[dict[str, Any]]) -> Summary:
    text: list[str] = []
    tools: list[str] = []
    finish = tokens = None
    for data in datas:
        kind = data.get("type")
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                tools.append(block.get("name", ""))
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                text.append(delta.get("text", ""))
        elif kind == "message_delta":
            finish = (data.get("delta") or {}).get("stop_reason") or finish
            tokens = (data.get("usage") or {}).get("output_tokens", tokens)
    return Summary(status, seconds, "".join(text), finish, tuple(tools), tokens)


def _summary_of(protocol: str, status: int, seconds: float, data: dict[str, Any]) -> Summary:
    if protocol == "openai-responses":
        items = [i for i in data.get("output") or [] if isinstance(i, dict)]
        return Summary(
            status, seconds,
            text="".join(part.get("text", "") for item in items if item.get("type") == "message"
                         for part in item.get("content") or [] if part.get("type") == "output_text"),
            finish=data.get("status"),
            tools=tuple(i.get("name", "") for i in items if i.get("type") == "function_call"),
            output_tokens=(data.get("usage") or {}).get("output_tokens"))
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

    def submit(self, runtime: Runtime, runner: Next, call: Call, v1: Summary | V1Stream) -> None:
        """Run `call` on V2 in the background (or drop it) and compare it with V1's answer."""
        if len(self._tasks) >= self._limit:
            self._metrics.shadow_requests.labels(call.route, "dropped").inc()
            return
        runtime.enter()  # the copy keeps V2's instances alive across a reload
        task = asyncio.create_task(self._run(runtime, runner, call, v1))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def incomplete(self, route: str) -> None:
        """V1's stream did not finish (the client went away): nothing to compare."""
        self._metrics.shadow_requests.labels(route, "incomplete").inc()

    async def _run(self, runtime: Runtime, runner: Next, call: Call,
                   first: Summary | V1Stream) -> None:
        started = time.perf_counter()
        try:
            # V1's stream is parsed here, off the client's path.
            v1 = first.summary(call.protocol) if isinstance(first, V1Stream) else first
            reply: Reply = await runner(call)
            try:
                if reply.chunks is not None:
                    chunks = [chunk async for chunk in reply.chunks]
                    v2 = summarize_stream(call.protocol, reply.status,
                                          time.perf_counter() - started, chunks)
                else:
                    v2 = summarize(call.protocol, reply.status, time.perf_counter() - started,
                                   reply.body)
            finally:
                aclose = getattr(reply.chunks, "aclose", None)
                if aclose is not None:
                    await aclose()
                if reply.release is not None:
                    reply.release()
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
        if v1.output_tokens and v2.output_tokens is not None:
            m.shadow_tokens_ratio.labels(route).observe(v2.output_tokens / v1.output_tokens)
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
