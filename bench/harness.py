"""What the network benchmarks share: the two endpoints (fast upstream, proxy) and request bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import orjson
from load import post_request
from resources_gen import BENCH_MODEL

HOST: Final = "127.0.0.1"
PATH: Final = "/v1/chat/completions"


def chat_body(model: str = BENCH_MODEL, *, stream: bool = False) -> bytes:
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "system", "content": "You are terse."},
                     {"role": "user", "content": "Say hello in three words."}],
        "max_tokens": 16,
    }
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


@dataclass(frozen=True)
class Endpoints:
    """Where the load goes: straight to the fast upstream, or through the proxy to it.

    `control_port`, when set, is a second fast upstream pinned to the proxy's core: calling it
    directly shows what crossing cores alone costs on this machine (no proxy work involved).
    """

    upstream_port: int
    proxy_port: int
    control_port: int | None = None

    def request(self, via_proxy: bool, *, stream: bool = False, model: str = BENCH_MODEL) -> bytes:
        return post_request(HOST, self.port(via_proxy), PATH, chat_body(model, stream=stream))

    def port(self, via_proxy: bool) -> int:
        return self.proxy_port if via_proxy else self.upstream_port

    def url(self, via_proxy: bool) -> str:
        return f"http://{HOST}:{self.port(via_proxy)}{PATH}"
