"""The `compatibility` interceptor: applies a pipeline's rewrite rules to OpenAI-shaped traffic.

Request rules run once per call on the parsed body; reply rules run on whole replies, or event
by event on streams (only when the pipeline has reply rules, so pass-through streams stay
byte-for-byte). Rules come fully expanded in the config document; nothing here knows presets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from vpipe_api.protocols import MODULE_ACCEPTS
from vpipe_proxy.errors import ConfigLoadError
from vpipe_proxy.modules import Call, Health, Next, Reply
from vpipe_proxy.sse import SSEDecoder

_REQUEST_OPS = frozenset({"rename", "drop", "default", "clamp"})


@dataclass(frozen=True, slots=True)
class Rule:
    op: str
    path: tuple[str, ...]
    to: tuple[str, ...]
    value: Any
    low: float | None
    high: float | None


def _path(dotted: str | None) -> tuple[str, ...]:
    return tuple(dotted.split(".")) if dotted else ()


def compile_rules(raw: list[dict[str, Any]]) -> tuple[Rule, ...]:
    rules = []
    for item in raw:
        value = item.get("value")
        if item["op"] == "default":
            value = orjson.loads(str(value))
        rules.append(Rule(item["op"], _path(item.get("field")), _path(item.get("to")), value,
                          item.get("min"), item.get("max")))
    return tuple(rules)


def _parent(body: dict[str, Any], path: tuple[str, ...], create: bool) -> dict[str, Any] | None:
    node: Any = body
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            if not create:
                return None
            child = node[key] = {}
        node = child
    return node if isinstance(node, dict) else None


def apply_request(rules: tuple[Rule, ...], body: dict[str, Any]) -> bool:
    """Rewrite `body` in place; True when anything changed."""
    changed = False
    for rule in rules:
        if rule.op not in _REQUEST_OPS:
            continue
        parent = _parent(body, rule.path, create=rule.op == "default")
        if parent is None:
            continue
        key = rule.path[-1]
        if rule.op == "drop" and key in parent:
            del parent[key]
            changed = True
        elif rule.op == "rename" and key in parent:
            value = parent.pop(key)
            target = _parent(body, rule.to, create=True)
            if target is not None and rule.to[-1] not in target:
                target[rule.to[-1]] = value
            changed = True
        elif rule.op == "default" and key not in parent:
            parent[key] = rule.value
            changed = True
        elif rule.op == "clamp":
            number = parent.get(key)
            if isinstance(number, (int, float)) and not isinstance(number, bool):
                clamped = number
                if rule.low is not None and clamped < rule.low:
                    clamped = rule.low
                if rule.high is not None and clamped > rule.high:
                    clamped = rule.high
                if clamped != number:
                    # An integer field (max_tokens) stays an integer: 8192, not 8192.0.
                    parent[key] = int(clamped) if isinstance(number, int) else clamped
                    changed = True
    return changed


def apply_reply(rules: tuple[Rule, ...], data: dict[str, Any], part: str) -> None:
    """Rewrite a chat.completion (`part="message"`) or a chunk (`part="delta"`) in place."""
    for choice in data.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        for rule in rules:
            if rule.op == "mapFinishReason" and choice.get("finish_reason") == rule.value:
                choice["finish_reason"] = rule.to[0]
            elif rule.op == "moveReasoning":
                holder = choice.get(part)
                key = rule.path[0]
                if isinstance(holder, dict) and holder.get(key) is not None:
                    target = rule.to[0] if rule.to else "reasoning_content"
                    holder.setdefault(target, holder.pop(key))


class CompatibilityModule:
    """Interceptor applying declarative rules before an OpenAI-compatible provider."""

    def __init__(self, key: str, config: dict[str, Any]) -> None:
        try:
            self.rules = compile_rules(config["rules"])
        except (KeyError, TypeError, orjson.JSONDecodeError) as e:
            raise ConfigLoadError(f"instance {key}: compatibility rules are malformed: {e}") from e
        self.key = key
        self.accepts = MODULE_ACCEPTS["compatibility"]
        self.health = Health(detail={"rules": len(self.rules)})
        self._reply_rules = tuple(r for r in self.rules if r.op not in _REQUEST_OPS)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def handle(self, call: Call, next: Next) -> Reply:
        if apply_request(self.rules, call.body):
            call.raw = b""  # the provider serializes the rewritten body
        reply = await next(call)
        if not self._reply_rules or reply.status != 200:
            return reply
        if reply.chunks is not None:
            reply.chunks = _rewrite_stream(self._reply_rules, reply.chunks)
            return reply
        try:
            data = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            return reply
        if isinstance(data, dict):
            apply_reply(self._reply_rules, data, "message")
            reply.body = orjson.dumps(data)
        return reply


async def _rewrite_stream(rules: tuple[Rule, ...],
                          chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    decoder = SSEDecoder()
    try:
        async for chunk in chunks:
            out = []
            for event in decoder.feed(chunk):
                out.append(_reencode(rules, event.event, event.data))
            if out:
                yield b"".join(out)
        tail = [_reencode(rules, e.event, e.data) for e in decoder.flush()]
        if tail:
            yield b"".join(tail)
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def _reencode(rules: tuple[Rule, ...], kind: str | None, data: str) -> bytes:
    head = b"event: " + kind.encode() + b"\n" if kind else b""
    payload = data.encode()
    if data != "[DONE]":
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            apply_reply(rules, parsed, "delta")
            payload = orjson.dumps(parsed)
    return head + b"data: " + payload + b"\n\n"
