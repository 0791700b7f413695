"""Decode a request body's Content-Encoding ourselves (aiohttp's is off on the client port).

Why not aiohttp's: it answers a body that does not decode with a plain-text 400 from inside its
parser, before any handler can answer in the client's protocol. Here a bad body is a
ProxyError (400 naming the encoding) and the decoded size is capped as it inflates, so a small
compressed body cannot expand past the body limit (a "zip bomb" is a 413, not an OOM).
"""

from __future__ import annotations

import zlib
from typing import Final

from vpipe_proxy.errors import ProxyError, bad_request

# wbits: gzip header, zlib header, and raw deflate (which some clients send as "deflate").
_WBITS: Final = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS,
                 "deflate": zlib.MAX_WBITS}
SUPPORTED: Final = ("identity", *_WBITS)


def decode(raw: bytes, encoding: str, limit: int) -> bytes:
    """`raw` decoded as `encoding` (a Content-Encoding value), at most `limit` bytes."""
    encoding = encoding.strip().lower()
    if not encoding or encoding == "identity":
        return raw
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise bad_request(f"Content-Encoding {encoding!r} is not supported; send the body "
                          f"as one of {', '.join(SUPPORTED)}.", code="bad_content_encoding")
    try:
        return _inflate(raw, wbits, limit)
    except zlib.error:
        if encoding != "deflate":
            raise _undecodable(encoding) from None
    try:
        return _inflate(raw, -zlib.MAX_WBITS, limit)  # raw deflate, no zlib header
    except zlib.error:
        raise _undecodable(encoding) from None


def _inflate(raw: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    data = inflater.decompress(raw, limit + 1)
    if len(data) > limit:
        raise ProxyError(413, "request_too_large",
                         f"The request body inflates past {limit} bytes (VPIPE_MAX_BODY_BYTES). "
                         "Send a smaller request.")
    if not inflater.eof:
        raise zlib.error("truncated")
    return data


def _undecodable(encoding: str) -> ProxyError:
    return bad_request(f"The request body is not valid {encoding} data, though Content-Encoding "
                       "says so; fix the encoding or send it uncompressed.",
                       code="bad_content_encoding")
