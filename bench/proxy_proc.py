"""The proxy under test as a separate process: `vpipe serve -f DIR`, pinned to its own core."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from conditions import pinned_command
from load import http_get
from resources_gen import write


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vpipe_executable() -> str:
    beside = Path(sys.executable).parent / "vpipe"
    if beside.exists():
        return str(beside)
    found = shutil.which("vpipe")
    if found is None:
        raise RuntimeError("the vpipe command is not installed (pip install -e . in the venv)")
    return found


def rss_kib(pid: int) -> int:
    """Resident set size of `pid` in KiB, from /proc/<pid>/status VmRSS."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class ProxyProcess:
    """`vpipe serve -f DIR` (or `--config-dir DIR` when `configmap`) on free ports, pinned to
    `core`; its output goes to `log_path`. `launcher` replaces the `vpipe` command (e.g. a
    wrapper that counts calls)."""

    def __init__(self, source_dir: Path, core: int | None, log_path: Path,
                 env: dict[str, str] | None = None, *, configmap: bool = False,
                 launcher: list[str] | None = None) -> None:
        self.port = free_port()
        self.admin_port = free_port()
        source = ["--config-dir" if configmap else "-f", str(source_dir)]
        command, preexec = pinned_command(
            [*(launcher or [vpipe_executable()]), "serve", *source, "--port", str(self.port),
             "--admin-port", str(self.admin_port)], core)
        environ = {**os.environ, **(env or {})}
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=environ, preexec_fn=preexec)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def ready(self, limit_s: float = 30.0) -> dict[str, Any]:
        """Wait for /readyz to answer 200; return its JSON."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"proxy exited with {self.proc.returncode}; see "
                                   f"{self.log_path}:\n{self.log_path.read_text()[-2000:]}")
            try:
                status, body = await http_get("127.0.0.1", self.admin_port, "/readyz")
            except (OSError, TimeoutError):
                status, body = 0, b""
            if status == 200:
                return dict(orjson.loads(body))
            await asyncio.sleep(0.05)
        raise RuntimeError(f"proxy not ready after {limit_s} s; see {self.log_path}")

    async def readyz(self) -> dict[str, Any]:
        _, body = await http_get("127.0.0.1", self.admin_port, "/readyz")
        return dict(orjson.loads(body))

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@asynccontextmanager
async def fresh_proxy(resources: list[dict[str, Any]],
                      core: int | None) -> AsyncIterator[ProxyProcess]:
    """A ready proxy of its own serving `resources` from a temporary directory, stopped after."""
    with tempfile.TemporaryDirectory() as workdir:
        directory = Path(workdir) / "resources"
        write(directory, resources)
        proxy = ProxyProcess(directory, core, Path(workdir) / "proxy.log")
        try:
            await proxy.ready()
            yield proxy
        finally:
            proxy.stop()
