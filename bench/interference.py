"""CPU used by processes that are not part of the benchmark, section by section.

The machine has few cores and the proxy's figures assume it has one to itself, so another
process (a test suite, a build) running meanwhile skews them. This sums user+system time of
every process outside this process's tree (kernel threads excluded; children's time that was
reaped into a parent is included through the parent's cutime/cstime) and reports, per section,
how much of one core it took.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stats() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, utime+stime+cutime+cstime in ticks) for every process."""
    out: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "
        ppid = int(fields[1])
        ticks = sum(int(v) for v in fields[11:15])
        out[int(entry.name)] = (ppid, ticks)
    return out


def foreign_cpu_seconds() -> float:
    """CPU seconds used so far by processes outside this process's tree (0 if no /proc)."""
    try:
        stats = _stats()
    except OSError:
        return 0.0
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    ours: set[int] = set()
    todo = [os.getpid()]
    while todo:
        pid = todo.pop()
        ours.add(pid)
        todo += children.get(pid, [])
    foreign = sum(ticks for pid, (ppid, ticks) in stats.items()
                  if pid not in ours and pid != 2 and ppid != 2)  # 2 = kthreadd
    return foreign / _TICK


class Interference:
    """Collects the share of a core used by foreign processes during each named section."""

    def __init__(self) -> None:
        self.sections: dict[str, float] = {}

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        cpu, wall = foreign_cpu_seconds(), time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - wall
            used = foreign_cpu_seconds() - cpu
            self.sections[name] = round(100 * used / elapsed, 1) if elapsed > 0 else 0.0

    def noisy(self, threshold: float = 5.0) -> dict[str, float]:
        return {name: pct for name, pct in self.sections.items() if pct > threshold}


def _tree(root: int, stats: dict[int, tuple[int, int]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            found.append(pid)
        todo += children.get(pid, [])
    return found


def tree_pids(root: int) -> list[int]:
    """`root` and every live descendant (e.g. nginx's master and its workers)."""
    return _tree(root, _stats())


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) used so far by `root` and every live descendant."""
    stats = _stats()
    return sum(stats[pid][1] for pid in _tree(root, stats)) / _TICK
