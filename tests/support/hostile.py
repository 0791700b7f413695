"""A proxy and a scripted upstream on a background thread, plus the checks every hostile case
must pass. Shared by the property tests and `bench/fuzz.py`.

One gateway serves all cases: routes send `chat-*` to an openai-chat provider, `resp-*` to an
openai-responses provider and `anth-*` to an anthropic-messages provider, so each front end
meets each provider protocol (native or through llmswitch). Requests go over plain http.client
keep-alive connections, so a case costs a round trip, not a client set-up.
"""

from __future__ import annotations

import asyncio
import copy
import http.client
import logging
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tests.support.proxy import pipeline, route, running_proxy, running_upstream, write_resources
from tests.support.scripted_upstream import Script, ScriptedUpstream
from vpipe_proxy.server import ProxyServer

PROVIDER_KEY = "sk-provider-secret-0123456789"
CLIENT_KEY = "sk-client-secret-9876543210"
CLIENT_HEADERS = {"Authorization": f"Bearer {CLIENT_KEY}", "x-api-key": CLIENT_KEY,
                  "Content-Type": "application/json"}

# Front end path -> a valid body (model filled in per provider).
FRONT_ENDS: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {
        "model": "", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"x": {"type": "string"}}}}}],
        "max_tokens": 5, "temperature": 0.5, "stream": False},
    "/v1/responses": {
        "model": "", "instructions": "be brief", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "42"}],
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "max_output_tokens": 5, "stream": False},
    "/v1/messages": {
        "model": "", "max_tokens": 5, "system": "be brief", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": "1"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "42"}]}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}], "stream": False},
    "/v1/messages/count_tokens": {
        "model": "", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/embeddings": {"model": "", "input": ["hi", "there"]},
}
PROVIDERS = ("chat", "resp", "anth")  # model prefixes, one per provider protocol
ANTHROPIC_PATHS = ("/v1/messages", "/v1/messages/count_tokens")


def gateway_resources(upstream: str) -> list[dict[str, Any]]:
    creds = {"secretRef": {"name": "up", "key": "key"}}
    return [
        pipeline("chat", {"family": "openai", "baseUrl": upstream, "credentials": creds}),
        pipeline("resp", {"family": "openai", "protocol": "openai-responses",
                          "baseUrl": upstream, "credentials": creds}),
        pipeline("anth", {"family": "anthropic", "baseUrl": upstream, "credentials": creds}),
        route("chat", ["chat-*"], "chat"),
        route("resp", ["resp-*"], "resp"),
        route("anth", ["anth-*"], "anth"),
    ]


class LogTap(logging.Handler):
    """Every record any logger emits, formatted with its traceback, for the key check."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Gateway:
    """Proxy + scripted upstream on their own loop thread."""

    settings: dict[str, Any] = field(default_factory=dict)
    upstream: ScriptedUpstream = field(default_factory=ScriptedUpstream)
    server: ProxyServer | None = None
    loop: asyncio.AbstractEventLoop | None = None
    _conn: http.client.HTTPConnection | None = None
    _stop: asyncio.Event | None = None

    def __enter__(self) -> Gateway:
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.result(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()
        assert self.loop is not None and self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)

    def _run(self, ready: Future[None]) -> None:
        asyncio.run(self._main(ready))

    async def _main(self, ready: Future[None]) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                async with running_upstream(self.upstream) as url:
                    write_resources(Path(tmp), gateway_resources(url))
                    environ = {"VPIPE_SECRET_UP_KEY": PROVIDER_KEY}
                    async with running_proxy(Path(tmp), environ=environ,
                                             **self.settings) as server:
                        self.server = server
                        ready.set_result(None)
                        await self._stop.wait()
        except BaseException as e:
            if not ready.done():
                ready.set_exception(e)
            raise

    def tasks_alive(self) -> bool:
        """The proxy's config watcher (its one long-lived task) still runs."""
        assert self.server is not None
        watch = self.server._watch
        return watch is not None and not watch.done()

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None,
             script: Script | None = None) -> Answer:
        assert self.server is not None
        self.upstream.script = script
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.server.port,
                                                        timeout=60)
            try:
                self._conn.request("POST", path, body=body,
                                   headers=CLIENT_HEADERS if headers is None else headers)
                response = self._conn.getresponse()
                data = response.read()
                answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                                data)
                if response.will_close:
                    self._conn.close()
                    self._conn = None
                return answer
            except (ConnectionError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


# -- case generation (shared with bench/fuzz.py) -------------------------------------------------

def body_for(path: str, provider: str, *, stream: bool = False) -> dict[str, Any]:
    body = copy.deepcopy(FRONT_ENDS[path])
    body["model"] = f"{provider}-model"
    if "stream" in body:
        body["stream"] = stream
    return body


def paths_of(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON value (keys of objects, indexes of arrays), parents first."""
    yield at
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths_of(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from paths_of(item, (*at, i))


def replaced(value: Any, at: tuple[Any, ...], new: Any) -> Any:
    """A copy of `value` with the thing at path `at` replaced by `new`."""
    if not at:
        return new
    out = copy.copy(value)
    out[at[0]] = replaced(value[at[0]], at[1:], new)
    return out


def nested(depth: int) -> Any:
    value: Any = "x"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


# -- what every answer must satisfy ---------------------------------------------------------------

def error_shaped(path: str, body: bytes) -> bool:
    """The body is an error in the protocol of `path`'s front end."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(data, dict):
        return False
    error = data.get("error")
    if path in ANTHROPIC_PATHS and data.get("type") != "error":
        return False
    return isinstance(error, dict) and isinstance(error.get("message"), str)


def stream_events_ok(body: bytes) -> bool:
    """Every data line of an SSE body is JSON or [DONE]."""
    for line in body.split(b"\n"):
        if line.startswith(b"data:"):
            data = line[5:].strip()
            if data == b"[DONE]":
                continue
            try:
                orjson.loads(data)
            except orjson.JSONDecodeError:
                return False
    return True


NATIVE = {("/v1/chat/completions", "chat"), ("/v1/embeddings", "chat"),
          ("/v1/responses", "resp"), ("/v1/messages", "anth"), ("/v1/messages/count_tokens", "anth")}


def problems(path: str, answer: Answer, *, client_fault: bool,
             check_events: bool = True) -> list[str]:
    """What is wrong with `answer` (empty: nothing). Native streams are forwarded byte for byte
    (not parsed, for speed), so `check_events` is off where the upstream's own events are
    garbage."""
    found = []
    if answer.status == 500 or (client_fault and answer.status >= 500):
        found.append(f"status {answer.status}")
    content_type = answer.headers.get("content-type", "")
    if content_type.startswith("text/event-stream"):
        if check_events and not stream_events_ok(answer.body):
            found.append("a stream event is not JSON")
    elif answer.status >= 400 and not error_shaped(path, answer.body):
        found.append(f"error body not protocol-shaped: {answer.body[:200]!r}")
    elif answer.status < 400:
        try:
            orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            found.append(f"success body not JSON: {answer.body[:200]!r}")
    everything = answer.body + repr(answer.headers).encode()
    for key in (PROVIDER_KEY, CLIENT_KEY):
        if key.encode() in everything:
            found.append("a key reached the client")
    return found


def keys_in_logs(tap: LogTap) -> bool:
    return any(PROVIDER_KEY in t or CLIENT_KEY in t for t in tap.texts)
