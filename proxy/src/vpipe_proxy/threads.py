"""Responses-API threads keep the pipeline that answered them, whatever the weight does.

A `previous_response_id` chain or a `conversation` names state kept on the provider's servers:
sent to another pipeline's provider, the next turn would not be found there. Hashing the
conversation's opening cannot keep such a thread together (each turn carries only its new
input), so the proxy remembers, per route, which pipeline answered each response id and
conversation id it served, in a bounded LRU (`VPIPE_THREAD_PINS` entries; ~170 bytes each).

Rules (`frontend._assign`, `splitter.pinned_version`): a thread pinned to the route's canary
stays on V2 while the canary takes a share (weight 0 after an abort sends it to V1); any other
thread stays on V1 while V1 takes a share (weight 100 sends it to V2). Pipelines, not versions,
are pinned: once a promoted canary becomes the stable pipeline in Git, its threads are V1's, and
a later canary does not inherit them. A `previous_response_id` the proxy never served from the
canary (one from before it, another replica's, or one forgotten by a restart) is taken to live
on the stable pipeline, where every thread began before the canary; so only the canary's
replies are pinned. A `conversation` is pinned on every route, canary or not, and a new one is
assigned like any other key.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

import orjson

from vpipe_proxy.sse import SSEDecoder

RESPONSE: Final = "r"  # a response id, as `previous_response_id` names it
CONVERSATION: Final = "c"  # a Conversations-API id, as `conversation` names it
_SNIFF_LIMIT: Final = 64 * 1024  # bytes searched for a stream's response id before giving up

Thread = tuple[str, str]  # (RESPONSE | CONVERSATION, id)


def thread_of(body: dict[str, Any]) -> Thread | None:
    """The provider-side thread a Responses request continues, if it names one."""
    previous = body.get("previous_response_id")
    if isinstance(previous, str) and previous:
        return RESPONSE, previous
    conversation = body.get("conversation")
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    if isinstance(conversation, str) and conversation:
        return CONVERSATION, conversation
    return None


def response_id(body: bytes) -> str | None:
    """The id of a whole Responses reply, if it has one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    found = data.get("id") if isinstance(data, dict) else None
    return found if isinstance(found, str) and found else None


class ThreadPins:
    """Which pipeline answered each thread of each route, least recently used dropped first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.evicted = 0  # pins forgotten to make room, since the process started
        self._pins: OrderedDict[tuple[str, str, str], str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pins)

    def get(self, route: str, thread: Thread) -> str | None:
        key = (route, *thread)
        pipeline = self._pins.get(key)
        if pipeline is not None:
            self._pins.move_to_end(key)
        return pipeline

    def pin(self, route: str, thread: Thread, pipeline: str) -> None:
        if self.limit == 0:
            return
        key = (route, *thread)
        self._pins[key] = pipeline
        self._pins.move_to_end(key)
        if len(self._pins) > self.limit:
            self._pins.popitem(last=False)
            self.evicted += 1


class ResponseIdSniffer:
    """Finds a Responses stream's id in its first event (`response.created`), fed the bytes
    the client gets; stops looking after that event or 64 KiB."""

    def __init__(self) -> None:
        self._decoder: SSEDecoder | None = SSEDecoder()
        self._seen = 0
        self.found: str | None = None

    def feed(self, chunk: bytes) -> str | None:
        """The id once found in this chunk, else None (also every time after)."""
        decoder = self._decoder
        if decoder is None:
            return None
        self._seen += len(chunk)
        for event in decoder.feed(chunk):
            self._decoder = None
            try:
                data = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                return None
            response = data.get("response") if isinstance(data, dict) else None
            found = response.get("id") if isinstance(response, dict) else None
            if isinstance(found, str) and found:
                self.found = found
                return found
            return None
        if self._seen > _SNIFF_LIMIT:
            self._decoder = None
        return None
