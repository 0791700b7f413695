"""The proxy's Kubernetes watch decoding: events arrive whole however the bytes are cut, with
or without the newline the API server puts after each."""

from __future__ import annotations

from vpipe_proxy.kube_source import WatchDecoder


def test_watch_decoder_with_and_without_newlines() -> None:
    raw = '{"type": "ADDED", "object": {"n": "é"}}\n{"type": "MODIFIED"}{"type": "DELETED"}'.encode()
    for cut in range(len(raw) + 1):
        decoder = WatchDecoder()
        events = decoder.feed(raw[:cut]) + decoder.feed(raw[cut:])
        assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
