"""Take credentials out of upstream bytes before they reach a client, a log or an error message.

The provider instance is the one place that knows its key (and sees the client's), so it builds
its secrets once and runs every upstream body, header and message through it. Matching is a plain
substring search (C speed: `bytes in bytes`), so the check costs microseconds on a normal body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

MASK: Final = "[redacted]"
_MASK_BYTES: Final = MASK.encode()
# Shorter values are not secrets worth masking and would shred ordinary text.
_MIN_SECRET: Final = 8
_CLIENT_KEY_HEADERS: Final = ("authorization", "x-api-key", "api-key")


def client_keys(headers: Mapping[str, str]) -> list[str]:
    """The credentials a client sent with its request (header values, bearer tokens alone)."""
    keys: list[str] = []
    for name in _CLIENT_KEY_HEADERS:
        value = headers.get(name)
        if value:
            keys.append(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() == "bearer":
                keys.append(token.strip())
    return keys


def secrets_of(values: Iterable[str]) -> tuple[str, ...]:
    """The values worth masking, longest first (a secret that contains another is masked
    whole)."""
    return tuple(sorted({v for v in values if len(v) >= _MIN_SECRET}, key=len, reverse=True))


def redact_bytes(data: bytes, secrets: Iterable[str]) -> bytes:
    for secret in secrets:
        raw = secret.encode("utf-8", "surrogateescape")
        if raw in data:
            data = data.replace(raw, _MASK_BYTES)
    return data


def redact_text(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text
