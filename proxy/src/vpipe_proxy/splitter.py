"""Traffic assignment between a Route's stable (V1) and canary (V2) pipelines. Pure.

Each request gets a stickiness key; the key hashes (salted by route) to one of 10,000 buckets,
and the bucket goes to V2 when it is below weight x 100. A key therefore stays on its version
while the weight holds, and raising the weight only ever moves keys from V1 to V2.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from typing import Any, Final

import orjson

BUCKETS: Final = 10_000
VERSION_HEADER: Final = "x-vpipe-version"
V1: Final = "v1"
V2: Final = "v2"


def bucket(route: str, key: bytes | None) -> int:
    """The key's bucket in [0, BUCKETS); a request without a key lands anywhere at random."""
    if key is None:
        return random.randrange(BUCKETS)
    digest = hashlib.blake2b(key, digest_size=8, person=route.encode()[:16]).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def in_canary(bucket_: int, weight: int) -> bool:
    return bucket_ < weight * (BUCKETS // 100)


def sticky_key(body: dict[str, Any], headers: Mapping[str, str], header: str | None) -> bytes | None:
    """What identifies the client or conversation, most specific first.

    The client (`client_key`), then the conversation itself: its system prompt and first user
    message stay the same on every turn, so a multi-turn chat keeps its version.
    """
    return client_key(body, headers, header) or conversation_key(body)


def client_key(body: dict[str, Any], headers: Mapping[str, str], header: str | None) -> bytes | None:
    """The configured header, then the OpenAI `user` / Anthropic `metadata.user_id` field."""
    if header is not None:
        value = headers.get(header)
        if value:
            return b"h:" + value.encode()
    user = body.get("user")
    if user is None:
        metadata = body.get("metadata")
        if isinstance(metadata, dict):
            user = metadata.get("user_id")
    if user:
        return b"u:" + str(user).encode()
    return None


def conversation_key(body: dict[str, Any]) -> bytes | None:
    """The conversation's opening: system prompt (or instructions) and messages up to the
    first user message."""
    messages = body.get("messages", body.get("input"))
    if isinstance(messages, str):  # a Responses request with a single string input
        return b"c:" + orjson.dumps([body.get("instructions"), messages])
    if isinstance(messages, list) and messages:
        opening = [body.get("system", body.get("instructions"))]
        for message in messages:
            opening.append(message)
            if isinstance(message, dict) and message.get("role") == "user":
                break
        return b"c:" + orjson.dumps(opening, option=orjson.OPT_SORT_KEYS)
    return None


def pinned_version(pinned: str, weight: int) -> str:
    """A pinned thread's version: its own while it takes a share of the route, else the other
    (V2 pins go to V1 once the weight is 0, V1 pins to V2 at 100)."""
    if pinned == V2:
        return V2 if weight > 0 else V1
    return V1 if weight < 100 else V2
