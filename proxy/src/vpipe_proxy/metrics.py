"""Prometheus metrics of one proxy process, on its own registry.

Labelled children are cached by label tuple: `labels()` takes a lock and hashes its arguments,
which at thousands of requests per second is worth avoiding.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from vpipe_proxy.threads import ThreadPins

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
UNROUTED = "-"  # route/pipeline/module label of requests that never reached a route


class Metrics:
    """All metrics the proxy exports; one instance per process (or per test)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "vpipe_requests",
            "Client requests answered, by route, pipeline, version (v1 stable, v2 canary), "
            "module and status.",
            ["route", "pipeline", "version", "module", "protocol", "status"], registry=r)
        self.duration = Histogram(
            "vpipe_request_duration_seconds",
            "Time from request received to last byte sent, by route, pipeline and version.",
            ["route", "pipeline", "version", "protocol"], buckets=LATENCY_BUCKETS, registry=r)
        self.first_chunk = Histogram(
            "vpipe_stream_first_chunk_seconds",
            "Time from request received to the first streamed chunk sent to the client.",
            ["route", "pipeline"], buckets=LATENCY_BUCKETS, registry=r)
        self.upstream_errors = Counter(
            "vpipe_upstream_errors", "Failures talking to upstreams, by error code.",
            ["pipeline", "module", "code"], registry=r)
        self.translation = Counter(
            "vpipe_translation_events",
            "Protocol-translation health: stream aborts, tool-call arguments that are not JSON, "
            "fields the provider cannot express, conversion errors.",
            ["route", "pipeline", "kind"], registry=r)
        self.dropped_fields = Counter(
            "vpipe_dropped_fields",
            "Hint fields, nested hint paths and tools a protocol conversion left out because the "
            "provider has no use for them (the llmswitch field policy; each is also named in the "
            "reply's x-vpipe-dropped header), by client->provider pair and field.",
            ["pair", "field"], registry=r)
        self.shadow_requests = Counter(
            "vpipe_shadow_requests",
            "Shadow copies (whole and streamed) by result: sent (V2 answered), failed (V2 "
            "answered an error status or its stream broke: still compared, so it shows as a "
            "status mismatch; or the copy raised: not compared), dropped (concurrency limit "
            "reached: never queued), incomplete (the client left before V1's stream ended: "
            "nothing to compare, V2 not called), skipped (a Responses request continuing a "
            "thread the provider keeps, by previous_response_id or conversation: V2's provider "
            "may not hold it, and a copy would add to the user's conversation). A V1 stream "
            "that ends in an in-band error is compared with that error's status (e.g. 502) as "
            "V1's.",
            ["route", "result"], registry=r)
        self.shadow_match = Counter(
            "vpipe_shadow_match",
            "Shadow comparisons by aspect and whether V2 matched V1: status, finish_reason, "
            "tool_calls (the called tools' names, in order), tool_arguments (names and JSON "
            "arguments, key order and whitespace ignored).", ["route", "aspect", "match"],
            registry=r)
        self.shadow_similarity = Histogram(
            "vpipe_shadow_text_similarity",
            "Word-set similarity (Jaccard, 0..1) of V2's answer text to V1's.", ["route"],
            buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0), registry=r)
        self.shadow_latency_delta = Histogram(
            "vpipe_shadow_latency_delta_seconds",
            "V2 latency minus V1 latency (streams: to the last chunk).", ["route"],
            buckets=(-5, -1, -0.25, -0.05, 0, 0.05, 0.25, 1, 5), registry=r)
        self.shadow_first_chunk_delta = Histogram(
            "vpipe_shadow_first_chunk_delta_seconds",
            "Streams: V2's time to its first chunk minus V1's.", ["route"],
            buckets=(-5, -1, -0.25, -0.05, 0, 0.05, 0.25, 1, 5), registry=r)
        self.shadow_tokens_ratio = Histogram(
            "vpipe_shadow_output_tokens_ratio",
            "V2's output tokens over V1's, when both report usage (1 = the same length).",
            ["route"], buckets=(0.25, 0.5, 0.8, 0.95, 1.05, 1.25, 2, 4), registry=r)
        self.reloads = Counter(
            "vpipe_config_reloads", "Config reload attempts by result (ok|failed).",
            ["result"], registry=r)
        self.live_instances = Gauge(
            "vpipe_live_instances", "Module instances currently alive.", registry=r)
        self.config_info = Gauge(
            "vpipe_config_info", "Revision of the config being served (value 1).",
            ["revision"], registry=r)
        self._children: dict[tuple[object, ...], MetricWrapperBase] = {}
        self._revision: str | None = None

    def _child(self, metric: MetricWrapperBase, labels: tuple[str, ...]) -> MetricWrapperBase:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request_done(self, route: str, pipeline: str, version: str, module: str, protocol: str,
                     status: int, seconds: float) -> None:
        self._child(self.requests, (route, pipeline, version, module, protocol, str(status))).inc()  # type: ignore[attr-defined]
        self._child(self.duration, (route, pipeline, version, protocol)).observe(seconds)  # type: ignore[attr-defined]

    def stream_first_chunk(self, route: str, pipeline: str, seconds: float) -> None:
        self._child(self.first_chunk, (route, pipeline)).observe(seconds)  # type: ignore[attr-defined]

    def upstream_error(self, pipeline: str, module: str, code: str) -> None:
        self._child(self.upstream_errors, (pipeline, module, code)).inc()  # type: ignore[attr-defined]

    def translation_event(self, route: str, pipeline: str, kind: str) -> None:
        self._child(self.translation, (route, pipeline, kind)).inc()  # type: ignore[attr-defined]

    def fields_dropped(self, pair: str, header: str) -> None:
        """Count each field named in an x-vpipe-dropped header value."""
        for field in header.split(", "):
            self._child(self.dropped_fields, (pair, field)).inc()  # type: ignore[attr-defined]

    def watch_threads(self, pins: ThreadPins) -> None:
        """Export the thread pin store's size and evictions, read at scrape time."""
        self.registry.register(_ThreadPinsCollector(pins))

    def reload_result(self, ok: bool) -> None:
        self.reloads.labels("ok" if ok else "failed").inc()

    def config_loaded(self, revision: str, live_instances: int) -> None:
        self.live_instances.set(live_instances)
        if revision and revision != self._revision:
            if self._revision is not None:
                self.config_info.remove(self._revision)
            self.config_info.labels(revision).set(1)
            self._revision = revision

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _ThreadPinsCollector(Collector):
    def __init__(self, pins: ThreadPins) -> None:
        self._pins = pins

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "vpipe_thread_pins", "Responses threads whose answering pipeline this proxy "
            f"remembers (at most VPIPE_THREAD_PINS, here {self._pins.limit}).", value=len(self._pins))
        yield CounterMetricFamily(
            "vpipe_thread_pins_evicted", "Thread pins forgotten to make room (least recently "
            "used first); a steady rise means VPIPE_THREAD_PINS is too small.",
            value=self._pins.evicted)
