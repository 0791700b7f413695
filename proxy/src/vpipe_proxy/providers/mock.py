"""The built-in `mock` provider family: deterministic OpenAI-shaped answers with no network.

It lets `vpipe serve -f examples/` work with no key and gives tests a provider whose output is
known exactly. Same request in, same content out; streaming yields one chunk per word.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from vpipe_api.document import ProviderConfig
from vpipe_api.patterns import ModelMap
from vpipe_api.protocols import provider_accepts
from vpipe_proxy.errors import ProxyError, bad_request
from vpipe_proxy.modules import Call, Health, Reply

_SSE_DONE = b"data: [DONE]\n\n"


class MockProvider:
    """Answers chat completions and embeddings deterministically, inside the proxy."""

    def __init__(self, key: str, config: ProviderConfig) -> None:
        self.key = key
        self.config = config
        self.protocol = config.protocol
        self.accepts = provider_accepts(config.protocol)
        self.health = Health(detail={"family": "mock"})
        self._models = ModelMap(config.model_map)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def call(self, call: Call) -> Reply:
        model = self._models.lookup(call.model)[0]
        if call.protocol == "openai-embeddings":
            reply = Reply(200, body=orjson.dumps(_embeddings(call.body, model)))
        elif call.stream:
            reply = Reply(200, chunks=_stream(call.body, model, call.raw),
                          content_type="text/event-stream")
        else:
            reply = Reply(200, body=orjson.dumps(_completion(call.body, model, call.raw)))
        self.health.record(True)
        return reply


def _last_user_text(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array of chat messages", param="messages")
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    str(part.get("text", "")) for part in content
                    if isinstance(part, dict) and part.get("type") == "text"
                )
    return ""


def _answer(body: dict[str, Any], model: str) -> tuple[list[str], str, int]:
    """The words of the answer, its finish reason, and the prompt's token count."""
    said = " ".join(_last_user_text(body).split())
    words = f"Mock reply from {model}. You said: {said}".split()[:64]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    finish = "stop"
    if isinstance(limit, int) and 0 < limit < len(words):
        words, finish = words[:limit], "length"
    prompt_tokens = sum(
        len(str(m.get("content", "")).split()) + 3
        for m in body.get("messages", []) if isinstance(m, dict)
    )
    return words, finish, prompt_tokens


def _tool_call(body: dict[str, Any]) -> dict[str, Any] | None:
    """A call to the named tool when tool_choice forces one (lets clients test tool plumbing)."""
    tools, choice = body.get("tools"), body.get("tool_choice")
    if not isinstance(tools, list) or not tools or choice in (None, "none", "auto"):
        return None
    name = None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
    if name is None and isinstance(tools[0], dict):
        name = (tools[0].get("function") or {}).get("name")
    return {"id": "call_mock_0", "type": "function",
            "function": {"name": str(name), "arguments": orjson.dumps({"mock": True}).decode()}}


def _ids(raw: bytes) -> tuple[str, int]:
    return "chatcmpl-mock-" + hashlib.sha256(raw).hexdigest()[:20], int(time.time())


def _completion(body: dict[str, Any], model: str, raw: bytes) -> dict[str, Any]:
    words, finish, prompt_tokens = _answer(body, model)
    tool_call = _tool_call(body)
    message: dict[str, Any] = {"role": "assistant", "content": " ".join(words), "refusal": None}
    if tool_call is not None:
        message.update(content=None, tool_calls=[tool_call])
        finish = "tool_calls"
    n = body.get("n")
    n = n if isinstance(n, int) else 1
    ident, created = _ids(raw)
    return {
        "id": ident, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": i, "message": message, "finish_reason": finish, "logprobs": None}
                    for i in range(max(1, n))],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                  "total_tokens": prompt_tokens + len(words)},
    }


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


async def _stream(body: dict[str, Any], model: str, raw: bytes) -> AsyncIterator[bytes]:
    words, finish, prompt_tokens = _answer(body, model)
    ident, created = _ids(raw)
    head = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return _sse({**head, "choices": [choice]})

    yield chunk({"role": "assistant", "content": ""})
    for i, word in enumerate(words):
        yield chunk({"content": word if i == 0 else " " + word})
    yield chunk({}, finish)
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                 "total_tokens": prompt_tokens + len(words)}
        yield _sse({**head, "choices": [], "usage": usage})
    yield _SSE_DONE


def _embeddings(body: dict[str, Any], model: str) -> dict[str, Any]:
    raw_input = body.get("input")
    inputs: list[Any] = raw_input if isinstance(raw_input, list) else [raw_input]
    if not inputs or any(not isinstance(i, (str, list)) for i in inputs):
        raise bad_request("'input' must be a string or an array of strings or token arrays",
                          param="input")
    dims = body.get("dimensions", 16)
    if not isinstance(dims, int) or not 1 <= dims <= 4096:
        raise bad_request("'dimensions' must be an integer from 1 to 4096", param="dimensions")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise ProxyError(400, "invalid_request", "'encoding_format' must be 'float' or 'base64'",
                         param="encoding_format")
    data = []
    tokens = 0
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else " ".join(map(str, item))
        tokens += max(1, len(text.split()))
        vector = _vector(text, dims)
        embedding: Any = vector
        if encoding == "base64":
            embedding = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _vector(text: str, dims: int) -> list[float]:
    seed = hashlib.sha256(text.encode()).digest()
    out: list[float] = []
    counter = 0
    while len(out) < dims:
        block = hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
        out += [(b - 127.5) / 127.5 for b in block]
        counter += 1
    return out[:dims]
