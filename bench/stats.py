"""Percentiles and plain-text tables for the benchmark report."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted sequence; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary_ms(seconds: Iterable[float]) -> dict[str, float]:
    """p50/p90/p99/p99.9/max/mean of latencies given in seconds, returned in milliseconds."""
    values = sorted(seconds)
    out = {f"p{q:g}": percentile(values, q) * 1000 for q in (50, 90, 99, 99.9)}
    out["max"] = values[-1] * 1000 if values else math.nan
    out["mean"] = sum(values) / len(values) * 1000 if values else math.nan
    out["n"] = float(len(values))
    return out


def fmt(value: object, digits: int = 3) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(title: str, header: Sequence[str], rows: Iterable[Sequence[object]],
          notes: Sequence[str] = ()) -> str:
    """A fixed-width text table with a title line and optional condition notes below it."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [len(h) for h in header]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join("-" * w for w in widths)
    out = [f"\n== {title}", "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    for row in cells:
        out.append("  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    out += [f"   {note}" for note in notes]
    return "\n".join(out)
