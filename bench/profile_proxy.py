"""Optional: sample the proxy with py-spy while it is saturated, and rank its hot spots.

py-spy runs on the load core (not the proxy's) in non-blocking mode; its raw (collapsed-stack)
output is kept next to the results and summarised as self time (the function on top of the
stack) and total time (anywhere on the stack), by function and file.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from conditions import pinned_command
from harness import Endpoints
from load import closed_loop
from stats import table

_LINE = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _frame(frame: str) -> str:
    """'handler (vpipe_proxy/frontend.py:120)' -> 'handler (vpipe_proxy/frontend.py)'."""
    frame = _LINE.sub(")", frame.strip())
    return frame.replace(str(Path(sys.prefix)) + "/lib/", "").replace("site-packages/", "")


def summarise(raw: str, top: int = 15) -> dict[str, Any]:
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            anywhere[frame] += count
    return {
        "samples": samples,
        "self": [(f, n / samples * 100) for f, n in own.most_common(top)] if samples else [],
        "total": [(f, n / samples * 100) for f, n in anywhere.most_common(top)] if samples else [],
    }


async def run(pid: int, endpoints: Endpoints, *, duration: float, core: int | None,
              out_dir: Path) -> dict[str, Any] | None:
    spy = py_spy()
    if spy is None:
        return None
    out = out_dir / "proxy-profile.txt"
    command, preexec = pinned_command(
        [spy, "record", "--pid", str(pid), "--duration", f"{duration:g}", "--rate", "250",
         "--format", "raw", "--nonblocking", "--output", str(out)], core)
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=preexec)
    await asyncio.sleep(0.5)  # py-spy attaches
    await closed_loop("127.0.0.1", endpoints.proxy_port, endpoints.request(True), 64,
                      duration=duration + 1, record=False)
    _, err = await proc.communicate()
    if proc.returncode != 0 or not out.exists():
        return {"error": err.decode(errors="replace")[-500:]}
    result = summarise(out.read_text())
    result["raw_file"] = str(out)
    return result


def report(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"\n== Proxy profile (py-spy)\n   py-spy failed: {result['error']}"
    return "\n".join([
        table(f"Proxy hot spots at saturation, self time (py-spy, {result['samples']:,} samples)",
              ["function (file)", "% of samples"], result["self"]),
        table("Proxy hot spots at saturation, total time (on the stack)",
              ["function (file)", "% of samples"], result["total"],
              [f"raw collapsed stacks: {result['raw_file']}"]),
    ])
