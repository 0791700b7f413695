"""Pure checks on the request path: body shapes, Content-Encoding decoding, SSE event cutting."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpipe_proxy import content_encoding, shapes
from vpipe_proxy.errors import ProxyError
from vpipe_proxy.redact import client_keys, redact_bytes, redact_text, secrets_of
from vpipe_proxy.sse import EventCutter, EventTooLarge

CHAT: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(("check", "body", "param"), [
    (shapes.check_chat, {"messages": None}, "messages"),
    (shapes.check_chat, {"messages": "hi"}, "messages"),
    (shapes.check_chat, {"messages": [None]}, "messages[0]"),
    (shapes.check_chat, {"messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role"),
    (shapes.check_chat, {"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    (shapes.check_chat, {"messages": [{"role": "user", "content": [{"type": "video"}]}]},
     "messages[0].content[0].type"),
    (shapes.check_chat, {"messages": [{"role": "tool", "content": "x"}]},
     "messages[0].tool_call_id"),
    (shapes.check_chat, {"messages": [{"role": "assistant", "tool_calls": [{"function": {}}]}]},
     "messages[0].tool_calls[0].id"),
    (shapes.check_chat, {**CHAT, "tools": [{"type": "function", "function": {"name": 3}}]},
     "tools[0].function.name"),
    (shapes.check_chat, {**CHAT, "max_tokens": "5"}, "max_tokens"),
    (shapes.check_chat, {**CHAT, "stop": [1]}, "stop[0]"),
    (shapes.check_responses, {"input": [{"type": "function_call", "name": "f"}]},
     "input[0].call_id"),
    (shapes.check_responses, {"input": [{"role": "user", "content": [{"type": "input_text"}]}]},
     "input[0].content[0].text"),
    (shapes.check_responses, {"input": 5}, "input"),
    (shapes.check_messages, {"max_tokens": 1, "messages": [
        {"role": "user", "content": [{"type": "tool_use", "name": "f", "input": {}}]}]},
     "messages[0].content[0].id"),
    (shapes.check_messages, {"max_tokens": 1, "messages": [
        {"role": "user", "content": [{"type": "hologram"}]}]}, "messages[0].content[0].type"),
    (shapes.check_messages, {"max_tokens": 1, "system": [{"type": "text", "text": None}],
                             "messages": [{"role": "user", "content": "x"}]}, "system[0].text"),
    (shapes.check_count_tokens, {"messages": [{"role": "tool", "content": "x"}]},
     "messages[0].role"),
    (shapes.check_embeddings, {"input": [None]}, "input[0]"),
    (shapes.check_embeddings, {"input": []}, "input"),
])
def test_bad_shapes_name_the_field(check: Any, body: dict[str, Any], param: str) -> None:
    with pytest.raises(ProxyError) as caught:
        check(body)
    assert caught.value.status == 400
    assert caught.value.param == param
    assert param in caught.value.message


def test_unknown_top_level_fields_and_nulls_pass() -> None:
    assert shapes.check_chat({**CHAT, "vendor_knob": {"x": 1}, "temperature": None,
                              "stream": None}) is False
    assert shapes.check_messages({"max_tokens": 1, "messages": [
        {"role": "user", "content": "x"}], "stream": True, "top_k": None}) is True


def test_depth_limit_agrees_with_orjson() -> None:
    ok = {"a": 1}
    for _ in range(shapes.MAX_DEPTH - 1):
        ok = {"a": ok}
    shapes.check_depth(ok)
    orjson.dumps({"wrapped": {"twice": ok}})  # conversion may wrap it: still serialisable
    with pytest.raises(ProxyError, match="nests deeper"):
        shapes.check_depth({"a": ok})
    assert not shapes.may_be_too_deep(orjson.dumps(CHAT))


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=3)))
def test_shape_checks_only_raise_proxy_errors(value: Any) -> None:
    for check in (shapes.check_chat, shapes.check_responses, shapes.check_messages,
                  shapes.check_count_tokens, shapes.check_embeddings):
        for body in ({"messages": value, "input": value, "max_tokens": 1},
                     {"messages": [value], "input": [value], "max_tokens": 1},
                     {"messages": [{"role": "user", "content": value}],
                      "input": [{"role": "user", "content": value}], "max_tokens": 1}):
            statuses = []
            try:
                check(body)
            except ProxyError as e:  # anything else (TypeError, ...) fails the test
                statuses.append(e.status)
            assert statuses in ([], [400])


def test_content_encoding() -> None:
    body = orjson.dumps(CHAT)
    assert content_encoding.decode(gzip.compress(body), "gzip", 1000) == body
    assert content_encoding.decode(zlib.compress(body), "deflate", 1000) == body
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert content_encoding.decode(raw_deflate.compress(body) + raw_deflate.flush(), "Deflate",
                                   1000) == body
    for encoding, data in (("gzip", b"nope"), ("gzip", gzip.compress(body)[:-9]), ("br", body)):
        with pytest.raises(ProxyError) as caught:
            content_encoding.decode(data, encoding, 1000)
        assert (caught.value.status, caught.value.code) == (400, "bad_content_encoding")
    with pytest.raises(ProxyError) as bomb:
        content_encoding.decode(gzip.compress(b" " * 10_000_000), "gzip", 1_000_000)
    assert bomb.value.status == 413


@settings(max_examples=300, deadline=None)
@given(events=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
                       max_size=8),
       cuts=st.lists(st.integers(0, 400), max_size=6))
def test_event_cutter_passes_whole_events_in_order(events: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(b"data: " + e + b"\n\n" for e in events)
    cutter = EventCutter(1000)
    out = []
    start = 0
    for cut in [*sorted(cuts), len(stream)]:
        piece = cutter.feed(stream[start:max(start, cut)])
        assert piece == b"" or piece.endswith(b"\n\n")
        out.append(piece)
        start = max(start, cut)
    out.append(cutter.rest())
    assert b"".join(out) == stream


def test_event_cutter_bounds_one_event() -> None:
    cutter = EventCutter(100)
    assert cutter.feed(b"data: ok\n\n") == b"data: ok\n\n"
    with pytest.raises(EventTooLarge):
        cutter.feed(b"data: " + b"x" * 200 + b"\n\n")  # whole, in one chunk
    cutter = EventCutter(100)
    cutter.feed(b"data: " + b"x" * 60)
    with pytest.raises(EventTooLarge):
        cutter.feed(b"x" * 60)  # grows past the cap across chunks


def test_redaction() -> None:
    secrets = secrets_of(["sk-provider-123456", "short", *client_keys(
        {"authorization": "Bearer sk-client-abcdefgh", "x-api-key": "sk-client-abcdefgh"})])
    assert "short" not in secrets
    text = "Authorization: Bearer sk-client-abcdefgh, key sk-provider-123456"
    assert redact_text(text, secrets) == "Authorization: [redacted], key [redacted]"
    assert redact_bytes(text.encode(), secrets) == b"Authorization: [redacted], key [redacted]"
