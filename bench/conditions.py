"""The machine and process conditions a figure was measured under, and CPU pinning helpers.

The proxy gets its own core; the fast upstream and the load generator share another. With a
single usable core nothing is pinned and the report says so.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any


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

    @classmethod
    def collect(cls, cores: Cores) -> Conditions:
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
                + (f"; wrk for the saturation test ({_version_or(wrk)})" if wrk else
                   "; wrk not installed")
            ),
            wrk=_wrk_version(wrk) if wrk else "not installed",
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        return [f"{k.replace('_', ' ')}: {v}" for k, v in asdict(self).items()] + [
            f"python executable: {sys.executable}"]


def _version_or(path: str) -> str:
    return _wrk_version(path)
