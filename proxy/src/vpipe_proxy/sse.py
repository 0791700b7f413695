"""Incremental server-sent-events decoder (sans-IO): bytes in, events out.

One decoder per stream, never shared. It accepts any split of the byte stream (a chunk may end
mid-line or mid-UTF-8 sequence) and the three line endings the SSE spec allows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    event: str | None
    data: str


class SSEDecoder:
    """Feed bytes as they arrive; get complete events back."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk
        events: list[Event] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                return events
            end, after = cut
            line = self._buffer[:end].decode("utf-8", "replace")
            self._buffer = self._buffer[after:]
            event = self._line(line)
            if event is not None:
                events.append(event)

    def flush(self) -> list[Event]:
        """Events still pending when the stream ends (a last event without its blank line)."""
        events = self.feed(b"\n\n") if self._buffer or self._data else []
        self._buffer = b""
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            if not self._data and self._event is None:
                return None
            event = Event(self._event, "\n".join(self._data))
            self._event, self._data = None, []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """(end of line, start of next) for the first complete line, or None."""
    lf = buffer.find(b"\n")
    cr = buffer.find(b"\r")
    if cr == -1 or (lf != -1 and lf < cr):
        return None if lf == -1 else (lf, lf + 1)
    if cr + 1 < len(buffer):  # a lone \r at the very end may still be followed by \n
        return cr, cr + 2 if buffer[cr + 1] == 0x0A else cr + 1
    return None


class EventTooLarge(Exception):
    """One event grew past the cap; `size` is how far it got."""

    def __init__(self, size: int) -> None:
        super().__init__(f"an event of at least {size} bytes")
        self.size = size


def _after_last_boundary(data: bytes) -> int:
    """Index just past the last blank line (\\n\\n, or \\r\\n\\r\\n via \\n\\r\\n), or -1."""
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\n\r\n")
    return max(lf + 2 if lf >= 0 else -1, crlf + 3 if crlf >= 0 else -1)


class EventCutter:
    """Cuts a byte stream at event boundaries without parsing events, so a relay forwards whole
    events only, and bounds each event to `limit` bytes (EventTooLarge past it).

    The usual chunk ends at a boundary and is passed on as it is; only a partial event at a
    chunk's end is held back (at most `limit` bytes) until its blank line arrives.
    """

    __slots__ = ("_held", "_limit", "_size")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> bytes:
        """The complete events this chunk finishes (b"" while an event is still open)."""
        if self._held:
            seam = self._held[-1][-2:] + chunk[:3]  # a blank line split across the two
            self._held.append(chunk)
            self._size += len(chunk)
            if _after_last_boundary(chunk) < 0 and _after_last_boundary(seam) < 0:
                if self._size > self._limit:
                    raise EventTooLarge(self._size)
                return b""
            chunk = b"".join(self._held)
            self._held, self._size = [], 0
        end = _after_last_boundary(chunk)
        if end != len(chunk):
            rest = chunk[end:] if end >= 0 else chunk
            chunk = chunk[:end] if end >= 0 else b""
            if len(rest) > self._limit:
                raise EventTooLarge(len(rest))
            self._held, self._size = [rest], len(rest)
        if len(chunk) > self._limit:
            _check_each(chunk, self._limit)
        return chunk

    def rest(self) -> bytes:
        """What is left when the stream ends (an event without its blank line)."""
        held, self._held, self._size = self._held, [], 0
        return b"".join(held)


def _check_each(data: bytes, limit: int) -> None:
    start = 0
    while start < len(data):
        end = data.find(b"\n\n", start)
        stop = len(data) if end < 0 else end
        if stop - start > limit:
            raise EventTooLarge(stop - start)
        start = stop + 2
