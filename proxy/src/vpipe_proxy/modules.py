"""What a module is to the proxy: the request it handles, the reply it gives, its lifecycle.

Plain slotted classes, not pydantic: one `Call` and one `Reply` exist per request, so they
must cost next to nothing. Modules are static instances shared by every pipeline whose config
hashes the same; they must keep no per-request state on themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class Call:
    """One client request as it travels down a chain."""

    __slots__ = ("body", "endpoint", "headers", "model", "pipeline", "protocol", "raw", "route",
                 "stream")

    def __init__(
        self,
        *,
        protocol: str,
        endpoint: str,
        body: dict[str, Any],
        raw: bytes,
        model: str,
        stream: bool,
        headers: Mapping[str, str],
        route: str,
        pipeline: str,
    ) -> None:
        self.protocol = protocol  # client protocol (a shape name from vpipe_api.protocols)
        self.endpoint = endpoint  # API path below /v1, e.g. "/chat/completions"
        self.body = body  # parsed JSON; a module that changes it sets raw = b""
        self.raw = raw  # the client's bytes, forwarded as-is while body is untouched
        self.model = model
        self.stream = stream
        self.headers = headers
        self.route = route
        self.pipeline = pipeline


class Reply:
    """What comes back up the chain: a whole body, or a stream of chunks."""

    __slots__ = ("body", "chunks", "content_type", "headers", "release", "status")

    def __init__(
        self,
        status: int,
        *,
        body: bytes = b"",
        chunks: AsyncIterator[bytes] | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        release: Callable[[], None] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.chunks = chunks  # set for streams; the front end writes each chunk as it arrives
        self.content_type = content_type
        self.headers = headers
        self.release = release  # returns the upstream connection; called once the reply is sent


@dataclass
class Health:
    """Per-instance health as shown on /debug/instances."""

    ok: bool = True
    requests: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def record(self, ok: bool, error: str | None = None) -> None:
        self.requests += 1
        if ok:
            self.consecutive_failures = 0
            self.ok = True
            return
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error = error
        self.ok = self.consecutive_failures < 5


@runtime_checkable
class Module(Protocol):
    """Lifecycle every module instance has."""

    key: str  # instance key from the config document
    accepts: frozenset[str]  # client shapes this module takes (protocol guard)
    health: Health

    async def start(self) -> None:
        """Create resources and warm up; raise ConfigLoadError when the instance cannot serve."""

    async def close(self) -> None:
        """Release resources; called once no runtime references the instance any more."""


@runtime_checkable
class PooledModule(Protocol):
    """A module that keeps upstream connections; /debug/instances shows their live figures."""

    def pool_stats(self) -> dict[str, int]:
        """Connections now: idle, in use (requests in flight), opened so far, the limit."""
        ...


@runtime_checkable
class Provider(Module, Protocol):
    """The last module of a chain: answers the call, usually by calling an upstream."""

    protocol: str  # provider protocol it speaks (an llmswitch converts other client shapes)

    async def call(self, call: Call) -> Reply: ...


Next = Callable[[Call], Awaitable[Reply]]


@runtime_checkable
class Interceptor(Module, Protocol):
    """A middle module: may change the call, answer it itself, or pass it on with `next`."""

    async def handle(self, call: Call, next: Next) -> Reply: ...
