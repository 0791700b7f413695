"""nginx as a plain reverse proxy in front of the fast upstream: the reference every vpipe figure
is divided by, measured in the same run on the same core.

Debian's `nginx-light` is used when installed (`apt-get install nginx-light`); `VPIPE_BENCH_NGINX`
names another binary. The config is what an operator would write for an LLM upstream: HTTP/1.1
keep-alive pool to the upstream, response buffering off (SSE goes out event by event), one worker
pinned to the proxy's core, no access log (vpipe's access log is off by default too).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from conditions import pinned_command
from proxy_proc import free_port

_CONFIG = """\
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    keepalive_requests 1000000;
    upstream llm {{ server 127.0.0.1:{upstream}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location / {{
            proxy_pass http://llm;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def binary() -> str | None:
    """The nginx binary to use, or None when none is installed."""
    named = os.environ.get("VPIPE_BENCH_NGINX")
    if named:
        return named
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None)


def version(path: str) -> str:
    out = subprocess.run([path, "-v"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: ")


class NginxProcess:
    """nginx proxying 127.0.0.1:`port` to the upstream on `upstream_port`, pinned to `core`."""

    def __init__(self, upstream_port: int, core: int | None) -> None:
        path = binary()
        if path is None:
            raise RuntimeError("nginx is not installed: apt-get install nginx-light "
                               "(or set VPIPE_BENCH_NGINX to a binary)")
        self.version = version(path)
        self.port = free_port()
        self._work = tempfile.TemporaryDirectory(prefix="vpipe-bench-nginx-")
        work = Path(self._work.name)
        conf = work / "nginx.conf"
        conf.write_text(_CONFIG.format(work=work, upstream=upstream_port, port=self.port))
        command, preexec = pinned_command([path, "-p", str(work), "-c", str(conf)], core)
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=preexec)
        self._wait_listening(work)

    def _wait_listening(self, work: Path) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                log = work / "error.log"
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {err}"
                                   f"{log.read_text() if log.exists() else ''}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start listening within 10 s")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self._work.cleanup()
