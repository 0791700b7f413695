"""The machine and process conditions a figure was measured under, and CPU pinning helpers.

The proxy gets its own core; the fast upstream and the load generator share another. With a
single usable core nothing is pinned and the report says so.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def source_digest(root: Path) -> str:
    """sha256 (12 hex) over the proxy/CLI sources, so a figure can be tied to the code measured."""
    digest = hashlib.sha256()
    for path in sorted((root / "proxy" / "src").rglob("*.py")) + sorted(
            (root / "cli" / "src").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _cpu_times() -> list[tuple[int, int]]:
    """(busy, total) jiffies per CPU from /proc/stat."""
    out = []
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                values = [int(v) for v in line.split()[1:]]
                idle = values[3] + (values[4] if len(values) > 4 else 0)
                out.append((sum(values) - idle, sum(values)))
    return out


def background_busy(seconds: float = 1.0) -> list[float]:
    """% busy of each CPU over `seconds` while the benchmark itself does nothing: anything else
    running on the machine (another test suite, say) skews every figure."""
    try:
        before = _cpu_times()
        time.sleep(seconds)
        after = _cpu_times()
    except OSError:
        return []
    return [round(100 * (b1 - b0) / max(1, t1 - t0), 1)
            for (b0, t0), (b1, t1) in zip(before, after, strict=True)]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(module: str) -> str:
    try:
        imported = __import__(module)
    except ImportError:
        return "not installed"
    return str(getattr(imported, "__version__", "installed"))


def _wrk_version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


@dataclass(frozen=True)
class Cores:
    """Which core runs what; None when pinning is not possible."""

    proxy: int | None
    load: int | None  # the fast upstream and the load generator

    @classmethod
    def choose(cls) -> Cores:
        try:
            usable = sorted(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            return cls(None, None)
        if len(usable) < 2:
            return cls(None, None)
        return cls(usable[0], usable[1])

    @property
    def pinned(self) -> bool:
        return self.proxy is not None

    def describe(self) -> str:
        if not self.pinned:
            return "not pinned (fewer than 2 usable cores): all processes share the CPU"
        return (f"proxy on core {self.proxy}; fast upstream + load generator share core {self.load}"
                " (the generator's and upstream's CPU time competes on that core, not the proxy's)")


def pin_self(core: int | None) -> None:
    """Pin the calling process to `core` (no-op when None)."""
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})


def unpin_self() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))


def pinned_command(command: list[str], core: int | None) -> tuple[list[str], Any]:
    """`command` prefixed with taskset when available; else a preexec_fn that pins the child."""
    if core is None:
        return command, None
    taskset = shutil.which("taskset")
    if taskset:
        return [taskset, "-c", str(core), *command], None

    def preexec() -> None:
        os.sched_setaffinity(0, {core})

    return command, preexec


@dataclass(frozen=True)
class Conditions:
    cpu_model: str
    logical_cpus: int
    usable_cpus: int
    kernel: str
    python: str
    uvloop: str
    httptools: str
    aiohttp: str
    pinning: str
    load_generator: str
    wrk: str
    source_digest: str

    @classmethod
    def collect(cls, cores: Cores, root: Path) -> Conditions:
        wrk = shutil.which("wrk")
        try:
            usable = len(os.sched_getaffinity(0))
        except AttributeError:
            usable = os.cpu_count() or 1
        return cls(
            cpu_model=_cpu_model(),
            logical_cpus=os.cpu_count() or 1,
            usable_cpus=usable,
            kernel=platform.release(),
            python=f"{platform.python_implementation()} {platform.python_version()}",
            uvloop=_version("uvloop"),
            httptools=_version("httptools"),
            aiohttp=_version("aiohttp"),
            pinning=cores.describe(),
            load_generator=(
                "raw asyncio+httptools client on uvloop (one process, keep-alive, no pipelining)"
                + ("; plus wrk (1 thread) in the saturation test" if wrk else
                   "; wrk not installed")
            ),
            wrk=_wrk_version(wrk) if wrk else "not installed",
            source_digest=source_digest(root),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        return [f"{k.replace('_', ' ')}: {v}" for k, v in asdict(self).items()] + [
            f"python executable: {sys.executable}"]

