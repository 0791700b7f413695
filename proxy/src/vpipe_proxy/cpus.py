"""How many worker processes `VPIPE_WORKERS` asks for; `auto` reads the container's CPU limit.

The limit is the cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`),
rounded up, and never more than the CPUs this process may run on (`sched_getaffinity`): a pod
limited to 1.5 CPUs gets 2 workers, one without a limit gets one per usable CPU.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from vpipe_proxy.settings import SettingsError

CGROUP_ROOT = Path("/sys/fs/cgroup")


def parse_cpu_max(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 `cpu.max` line ("QUOTA PERIOD"); None for "max" (no limit)."""
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    period = int(parts[1]) if len(parts) > 1 else 100_000
    return int(parts[0]) / period


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii")
    except OSError:
        return None


def _v2_path(proc_cgroup: str | None) -> str:
    for line in (proc_cgroup or "").splitlines():
        if line.startswith("0::"):
            return line[3:].strip()
    return "/"


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> float | None:
    """The tightest CPU quota on this process's cgroup and its parents; None when unlimited.

    `proc_cgroup` is the text of /proc/self/cgroup (read when None)."""
    if proc_cgroup is None:
        proc_cgroup = _read(Path("/proc/self/cgroup"))
    limits: list[float] = []
    relative = Path(_v2_path(proc_cgroup).lstrip("/"))
    for directory in (root / relative, *(root / p for p in relative.parents)):
        text = _read(directory / "cpu.max")
        if text is not None and (value := parse_cpu_max(text)) is not None:
            limits.append(value)
    quota, period = _read(root / "cpu" / "cpu.cfs_quota_us"), _read(root / "cpu" / "cpu.cfs_period_us")
    if quota is not None and period is not None and int(quota) > 0 and int(period) > 0:
        limits.append(int(quota) / int(period))
    return min(limits) if limits else None


def usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - macOS


def auto_workers(limit: float | None, cpus: int) -> int:
    """ceil(limit), at most `cpus`, at least 1; `cpus` when there is no limit."""
    if limit is None:
        return max(1, cpus)
    return max(1, min(cpus, math.ceil(limit)))


def resolve_workers(raw: str) -> int:
    """The worker count `raw` (VPIPE_WORKERS or --workers) asks for."""
    text = raw.strip().lower()
    if text == "auto":
        return auto_workers(cgroup_cpu_limit(), usable_cpus())
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise SettingsError(f"Invalid VPIPE_WORKERS={raw!r}. Needs to be a whole number of "
                            "worker processes (1 or more) or 'auto' (one per CPU of the limit).")
    return count
