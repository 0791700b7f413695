"""Thread pinning, pure parts: which thread a request names, the LRU, a stream's response id,
and where a pinned thread goes as the weight moves."""

from __future__ import annotations

import orjson
import pytest

from vpipe_proxy.splitter import V1, V2, pinned_version
from vpipe_proxy.threads import (
    CONVERSATION,
    RESPONSE,
    ResponseIdSniffer,
    ThreadPins,
    response_id,
    thread_of,
)


@pytest.mark.parametrize(("body", "thread"), [
    ({"input": "hi", "previous_response_id": "resp_1"}, (RESPONSE, "resp_1")),
    ({"input": "hi", "conversation": "conv_1"}, (CONVERSATION, "conv_1")),
    ({"input": "hi", "conversation": {"id": "conv_2"}}, (CONVERSATION, "conv_2")),
    ({"input": "hi", "previous_response_id": "resp_1", "conversation": "c"}, (RESPONSE, "resp_1")),
    ({"input": "hi"}, None),
    ({"input": "hi", "previous_response_id": None, "conversation": {"id": ""}}, None),
    ({"input": "hi", "previous_response_id": 7}, None),
])
def test_thread_of(body: dict[str, object], thread: tuple[str, str] | None) -> None:
    assert thread_of(body) == thread


def test_pins_are_per_route_and_bounded_least_recently_used_first() -> None:
    pins = ThreadPins(limit=3)
    for n in range(3):
        pins.pin("r", (RESPONSE, f"id{n}"), V2)
    assert pins.get("other", (RESPONSE, "id0")) is None
    assert pins.get("r", (RESPONSE, "id0")) == V2  # now the most recently used
    pins.pin("r", (CONVERSATION, "c"), V1)
    assert len(pins) == 3 and pins.evicted == 1
    assert pins.get("r", (RESPONSE, "id1")) is None
    assert pins.get("r", (RESPONSE, "id0")) == V2
    assert pins.get("r", (CONVERSATION, "c")) == V1


def test_no_pins_when_the_limit_is_zero() -> None:
    pins = ThreadPins(limit=0)
    pins.pin("r", (RESPONSE, "x"), V2)
    assert len(pins) == 0 and pins.get("r", (RESPONSE, "x")) is None


@pytest.mark.parametrize(("pinned", "weight", "version"), [
    (V2, 1, V2), (V2, 100, V2), (V2, 0, V1), (V1, 0, V1), (V1, 99, V1), (V1, 100, V2)])
def test_a_pin_holds_while_its_version_has_a_share(pinned: str, weight: int,
                                                   version: str) -> None:
    assert pinned_version(pinned, weight) == version


def test_response_id_of_a_whole_reply() -> None:
    assert response_id(b'{"id": "resp_9", "object": "response"}') == "resp_9"
    assert response_id(b"not json") is None
    assert response_id(b"[1]") is None
    assert response_id(b'{"id": 3}') is None


STREAM = (b"event: response.created\ndata: " + orjson.dumps(
    {"type": "response.created", "response": {"id": "resp_é1", "status": "in_progress"}})
    + b"\n\nevent: response.output_text.delta\ndata: {\"delta\": \"hi\"}\n\n")


@pytest.mark.parametrize("size", [1, 2, 7, 64, len(STREAM)])
def test_sniffer_finds_the_id_however_the_stream_is_split(size: int) -> None:
    sniffer = ResponseIdSniffer()
    found = [sniffer.feed(STREAM[i:i + size]) for i in range(0, len(STREAM), size)]
    assert [f for f in found if f is not None] == ["resp_é1"]
    assert sniffer.found == "resp_é1"


def test_sniffer_looks_at_the_first_event_only_and_gives_up_on_a_long_one() -> None:
    sniffer = ResponseIdSniffer()
    sniffer.feed(b"data: {\"type\": \"ping\"}\n\n")
    assert sniffer.feed(STREAM) is None and sniffer.found is None
    endless = ResponseIdSniffer()
    endless.feed(b"data: " + b"x" * 70_000)
    assert endless.feed(b"\n\n" + STREAM) is None and endless.found is None
