"""`python -m vpipe_operator` as a real process: it serves, and SIGTERM stops it gracefully.

The same entry point `vpipe operator` uses; settings from the environment, credentials from
KUBECONFIG. On SIGTERM kopf stops the watches, our cleanup lets the scheduler finish, and the
process exits 0 with the shutdown logged.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.operator.harness import Cluster, eventually, pipeline, route, write_kubeconfig


async def test_process_serves_and_stops_on_sigterm(cluster: Cluster, tmp_path: Path) -> None:
    env = {**os.environ, "KUBECONFIG": str(write_kubeconfig(tmp_path, cluster.url)),
           "VPIPE_OPERATOR_DEBOUNCE": "0.05"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vpipe_operator", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        await cluster.create(pipeline("mock-v1", "proc"))
        await cluster.create(route("r", "proc", "mock-v1", ["m"]))
        await eventually(lambda: cluster.doc("proc"), what="the ConfigMap", timeout=20)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    log = output.decode()
    assert process.returncode == 0, log
    assert "Namespace proc: created ConfigMap vpipe-config" in log
    assert "vpipe operator stopped" in log
