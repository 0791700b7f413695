"""`vpipe serve` with every Python function call counted: run as the proxy process by
`compare.py --calls` (or by hand: `python bench/count_calls.py OUT serve -f DIR ...`).

A profile hook on every thread counts `call` (Python functions) and `c_call` (builtins and C
extensions called from Python) events. SIGUSR1 writes the totals so far to OUT as JSON; the
difference between two snapshots around N requests, divided by N, is the calls per request: a
figure that, unlike time, is the same on every machine for the same code and inputs.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

_counts = {"call": 0, "c_call": 0}


def _hook(frame: FrameType, event: str, arg: Any) -> None:
    if event in _counts:
        _counts[event] += 1


def main() -> int:
    out = Path(sys.argv[1])

    def snapshot(signum: int, frame: FrameType | None) -> None:
        out.write_text(json.dumps(_counts))

    signal.signal(signal.SIGUSR1, snapshot)
    from vpipe_cli.main import main as vpipe_main

    threading.setprofile(_hook)
    sys.setprofile(_hook)
    return vpipe_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
