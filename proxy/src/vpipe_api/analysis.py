"""Canary analysis queries: the built-in metrics and the placeholders a query may use.

A Route's `spec.canary.analysis.metrics` are PromQL queries over the proxies' own metrics; this
module is the pure part: which names are built in, what they measure, and how a query template
becomes the PromQL sent to Prometheus. Placeholders are `string.Template` ones (`$route`), since
PromQL itself uses braces and never `$`.
"""

from __future__ import annotations

import dataclasses
import re
from string import Template
from typing import Final

PLACEHOLDERS: Final = {
    "route": "the Route's name",
    "namespace": "the Route's namespace",
    "stable": "the stable (V1) Pipeline",
    "canary": "the canary (V2) Pipeline",
    "window": "the analysis interval as a PromQL range, e.g. 1m (for rate(...[$window]))",
    "selector": "the label matchers every built-in uses: "
                'route="<route>", plus namespace="<namespace>" when the operator adds it',
}


@dataclasses.dataclass(frozen=True)
class BuiltinMetric:
    """A metric a Route names without writing its query."""

    query: str
    meaning: str


# The numerators fall back to 0 (`or vector(0)`) so "no failures yet" is 0, not "no data";
# the denominators do not, so a canary without traffic is "no data" (inconclusive), never a pass.
BUILTIN_METRICS: Final[dict[str, BuiltinMetric]] = {
    "success-rate": BuiltinMetric(
        '(sum(rate(vpipe_requests_total{$selector,version="v2",status!~"5.."}[$window])) '
        "or vector(0)) / "
        'sum(rate(vpipe_requests_total{$selector,version="v2"}[$window]))',
        "share of the canary's requests not answered with a 5xx (0..1); e.g. min: 0.99"),
    "latency-p99": BuiltinMetric(
        "histogram_quantile(0.99, sum by (le) "
        '(rate(vpipe_request_duration_seconds_bucket{$selector,version="v2"}[$window])))',
        "99th percentile of the canary's request duration in seconds; e.g. max: 5"),
    "translation-errors": BuiltinMetric(
        '(sum(rate(vpipe_translation_events_total{$selector,pipeline="$canary"}[$window])) '
        "or vector(0)) / "
        'sum(rate(vpipe_requests_total{$selector,version="v2"}[$window]))',
        "protocol-translation problems (stream aborts, invalid tool-call arguments, "
        "unmapped fields, conversion errors) per canary request; e.g. max: 0.001"),
}

_DURATION: Final = re.compile(r"^([1-9][0-9]*)(s|m|h)$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600}


def duration_seconds(value: str) -> int:
    """Seconds in a duration such as `30s`, `5m` or `1h` (the only forms accepted)."""
    found = _DURATION.match(value)
    if found is None:
        raise ValueError(f"'{value}' is not a duration: use a whole number with s, m or h, "
                         "e.g. 30s, 5m, 1h")
    return int(found.group(1)) * _UNITS[found.group(2)]


def unknown_placeholders(query: str) -> list[str]:
    """Placeholders in `query` that are not in PLACEHOLDERS (and `$` signs that are invalid)."""
    template = Template(query)
    if not template.is_valid():
        return ["$ (write $$ for a literal dollar sign)"]
    return sorted(set(template.get_identifiers()) - set(PLACEHOLDERS))


def render_query(
    template: str, *, route: str, namespace: str, stable: str, canary: str, window: str,
    namespace_label: str = "namespace",
) -> str:
    """The PromQL for one check. `namespace_label` empty: Prometheus has no namespace label."""
    selector = f'route="{_quoted(route)}"'
    if namespace_label:
        selector += f',{namespace_label}="{_quoted(namespace)}"'
    return Template(template).substitute(
        route=_quoted(route), namespace=_quoted(namespace), stable=_quoted(stable),
        canary=_quoted(canary), window=window, selector=selector)


def _quoted(value: str) -> str:
    # Names are DNS labels/subdomains already; escaping keeps a label value a label value.
    return value.replace("\\", "\\\\").replace('"', '\\"')
