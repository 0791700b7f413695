"""Optional saturation load with wrk (C, epoll), when it is installed: a lighter generator than
any Python one, so the figure is the proxy's ceiling rather than the generator's."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from conditions import pinned_command

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def available() -> bool:
    return shutil.which("wrk") is not None


@dataclass(frozen=True)
class WrkResult:
    rate: float
    requests: int
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    duration_s: float
    connections: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text.strip())
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse(output: str, connections: int, duration: float) -> WrkResult:
    def grab(pattern: str) -> str | None:
        match = re.search(pattern, output, re.MULTILINE)
        return match.group(1) if match else None

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    return WrkResult(
        rate=float(grab(r"^Requests/sec:\s+([0-9.]+)") or "nan"),
        requests=int(grab(r"^\s*(\d+) requests in") or 0),
        non_2xx=int(grab(r"Non-2xx or 3xx responses: (\d+)") or 0),
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        p50_ms=_ms(grab(r"^\s+50%\s+(\S+)") or ""),
        p99_ms=_ms(grab(r"^\s+99%\s+(\S+)") or ""),
        duration_s=duration,
        connections=connections,
    )


def run(url: str, body: bytes, *, connections: int, duration: float,
        core: int | None) -> WrkResult:
    """POST `body` to `url` with one wrk thread and `connections` keep-alive connections."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed")
    lua_body = body.decode().replace("\\", "\\\\").replace('"', '\\"')
    script = (f'wrk.method = "POST"\nwrk.body = "{lua_body}"\n'
              'wrk.headers["Content-Type"] = "application/json"\n')
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "post.lua"
        path.write_text(script)
        command, preexec = pinned_command(
            [wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "-s", str(path),
             url], core)
        out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60,
                             preexec_fn=preexec, check=True)
    return parse(out.stdout, connections, duration)
