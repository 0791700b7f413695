"""The proxy as a process (`vpipe serve`), under faults: it reports them and carries on.

Aspects: out of file descriptors (RLIMIT_NOFILE lowered, client connections holding them all)
while a new config arrives: the reload fails visibly, and once descriptors are free again the
proxy loads that config by itself, without the file changing again; SIGTERM after a rejected
config (one that used to kill the watcher) drains the request in flight and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.proxy import pipeline, route, unused_port, write_resources
from vpipe_api.loading import parse_resources
from vpipe_api.render import render

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
FD_LIMIT = 96


@contextlib.contextmanager
def serving(*args: str, fd_limit: int | None = None) -> Iterator[tuple[subprocess.Popen[str], str,
                                                                       str]]:
    port, admin = unused_port(), unused_port()

    def limit_fds() -> None:
        if fd_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    process = subprocess.Popen(
        [sys.executable, "-m", "vpipe_cli.main", "serve", *args, "--port", str(port),
         "--admin-port", str(admin)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=limit_fds,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "VPIPE_POLL_INTERVAL": "0.05",
             "VPIPE_SHUTDOWN_TIMEOUT": "10", "VPIPE_WARM_CONNECTIONS": "0"})
    try:
        yield process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}"
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


async def readyz(session: aiohttp.ClientSession, admin: str) -> dict[str, Any]:
    async with session.get(admin + "/readyz") as response:
        body: dict[str, Any] = await response.json()
        return body


async def until_ready(session: aiohttp.ClientSession, admin: str, check: Any,
                      what: str, timeout: float = 20) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            last = await readyz(session, admin)
            if check(last):
                return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: last /readyz {last}")


def write_document(directory: Path, docs: list[dict[str, Any]]) -> str:
    resources = parse_resources(docs)
    document = render(resources.pipelines, resources.routes)
    staging = directory / ".config.json.tmp"
    staging.write_bytes(document.to_json())
    os.replace(staging, directory / "config.json")
    return document.revision


@pytest.mark.timeout(90)
async def test_out_of_file_descriptors_is_reported_and_recovered(tmp_path: Path,
                                                                 upstream_url: str) -> None:
    directory = tmp_path / "config"
    directory.mkdir()
    first = write_document(directory, [pipeline("p", {"family": "mock"}),
                                       route("r", ["m-*"], "p")])
    with serving("--config-dir", str(directory), fd_limit=FD_LIMIT) as (process, url, admin):
        async with aiohttp.ClientSession() as session:
            await until_ready(session, admin, lambda r: r["revision"] == first, "first config")
            # Hold every descriptor the proxy has left: it accepts until EMFILE.
            hogs = []
            for _ in range(FD_LIMIT + 20):
                hog = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
                hogs.append(hog)
            await asyncio.sleep(1.0)
            second = write_document(directory, [pipeline("p", {"family": "mock"}),
                                                route("r", ["m-*", "n-*"], "p")])
            await asyncio.sleep(1.5)  # the reload meets EMFILE, again and again
            for hog in hogs:
                hog.close()
            ready = await until_ready(session, admin, lambda r: r["revision"] == second,
                                      "the new config once descriptors are free")
            assert ready["lastReload"]["failures"] >= 1
            assert not any(t["failures"] for t in ready["backgroundTasks"].values())
            async with session.post(url + "/v1/chat/completions",
                                    json={"model": "n-1", **CHAT}) as response:
                assert response.status == 200
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "Too many open files" in stderr


@pytest.mark.timeout(60)
async def test_sigterm_after_a_rejected_config_drains_and_exits_0(tmp_path: Path,
                                                                  upstream_url: str) -> None:
    directory = tmp_path / "resources"
    good = [pipeline("p", {"family": "openai-compatible", "baseUrl": upstream_url}),
            route("r", ["*"], "p")]
    write_resources(directory, good)
    with serving("-f", str(directory)) as (process, url, admin):
        async with aiohttp.ClientSession() as session:
            first = await until_ready(session, admin, lambda r: r["ready"], "first config")
            # An empty user part in the URL passed validation and then made the upstream client
            # raise ValueError while loading: that used to kill the watcher.
            broken_url = upstream_url.replace("http://", "http://@")
            write_resources(directory, [pipeline("p", {"family": "openai-compatible",
                                                       "baseUrl": broken_url}),
                                        route("r", ["*"], "p")])
            ready = await until_ready(session, admin, lambda r: r["lastReload"]["ok"] is False,
                                      "the broken config rejected")
            assert ready["revision"] == first["revision"] and "baseUrl" in ready["lastReload"]["error"]
            slow = asyncio.create_task(session.post(url + "/v1/chat/completions",
                                                    json={"model": "slow-1", **CHAT}))
            await asyncio.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            response = await slow
            assert response.status == 200
            assert (await response.json())["choices"][0]["message"]["content"] == "fake says: hi"
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
