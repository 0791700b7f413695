"""Where the operator's Kubernetes API credentials come from: a kubeconfig or the pod's account.

Both our REST client (`kube`) and kopf (through the login handler) use the same `Credentials`,
so they always talk to the same cluster as the same identity. Precedence follows kubectl:
`$KUBECONFIG` when set, else the in-cluster service account, else `~/.kube/config`.

Supported: bearer tokens (inline, `tokenFile`, the rotating projected service-account token),
client certificates (paths or inline data), basic auth, CA bundles, `insecure-skip-tls-verify`.
Not supported: `exec` and `auth-provider` plugins (cloud CLIs); the error says what to use
instead. This module never logs a token or a key.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import ssl
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from vpipe_operator.errors import CredentialsError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0  # projected tokens rotate; kubelet refreshes the file well ahead


@dataclasses.dataclass(frozen=True)
class Credentials:
    """One API endpoint and how to authenticate to it."""

    server: str
    origin: str  # for messages: "kubeconfig /path (context kind-vpipe)", "in-cluster ..."
    ca_path: str | None = None
    ca_data: bytes | None = None  # PEM
    insecure: bool = False
    token: str | None = None
    token_path: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    cert_data: bytes | None = None  # PEM
    key_data: bytes | None = None  # PEM
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    namespace: str | None = None

    def current_token(self) -> str | None:
        """The bearer token, re-reading `token_path` at most once a minute (rotation)."""
        if self.token_path is None:
            return self.token
        return _read_token(self.token_path)

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS settings for https servers; None for plain http (test servers)."""
        if not self.server.startswith("https://"):
            return None
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(
                cafile=self.ca_path, cadata=self.ca_data.decode() if self.ca_data else None
            )
        cert, key = self.cert_path, self.key_path
        if self.cert_data is not None or self.key_data is not None:
            cert, key = _materialize(self.cert_data, self.key_data)
        if cert is not None:
            try:
                context.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as e:
                raise CredentialsError(
                    f"cannot load the client certificate from {self.origin}: {e}"
                ) from e
        return context


def load_credentials(
    environ: Mapping[str, str], *, service_account_dir: Path = SERVICE_ACCOUNT_DIR
) -> Credentials:
    """Credentials per kubectl's precedence; raise `CredentialsError` saying what was tried."""
    if environ.get("KUBECONFIG"):
        paths = [p for p in environ["KUBECONFIG"].split(os.pathsep) if p]
        return from_kubeconfig(paths)
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if host and port and (service_account_dir / "token").exists():
        return from_service_account(host, port, service_account_dir)
    home = Path(environ.get("HOME", "~")).expanduser() / ".kube" / "config"
    if home.exists():
        return from_kubeconfig([str(home)])
    raise CredentialsError(
        "no Kubernetes credentials found: KUBECONFIG is unset, this is not a pod with a "
        f"service account ({service_account_dir}/token), and {home} does not exist. "
        "Set KUBECONFIG or run in-cluster"
    )


def from_service_account(host: str, port: str, directory: Path) -> Credentials:
    host = f"[{host}]" if ":" in host else host  # IPv6 service address
    namespace_file = directory / "namespace"
    ca_file = directory / "ca.crt"
    return Credentials(
        server=f"https://{host}:{port}",
        origin=f"in-cluster service account ({directory})",
        ca_path=str(ca_file) if ca_file.exists() else None,
        token_path=str(directory / "token"),
        namespace=namespace_file.read_text().strip() if namespace_file.exists() else None,
    )


def from_kubeconfig(paths: list[str]) -> Credentials:
    """The current context of the first kubeconfig that sets one (files merged, first wins)."""
    merged: dict[str, dict[str, Any]] = {"clusters": {}, "users": {}, "contexts": {}}
    bases: dict[tuple[str, str], Path] = {}
    current: str | None = None
    for raw_path in paths:
        path = Path(raw_path).expanduser()
        if not path.exists():
            continue
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise CredentialsError(f"cannot read kubeconfig {path}: {e}") from e
        if not isinstance(doc, dict):
            raise CredentialsError(f"kubeconfig {path} is not a mapping")
        current = current or doc.get("current-context")
        for section, item in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in doc.get(section) or []:
                if isinstance(entry, dict) and entry.get("name") not in merged[section]:
                    merged[section][entry["name"]] = entry.get(item) or {}
                    bases[(section, entry["name"])] = path.parent
    where = ", ".join(paths)
    if not bases and not any(Path(p).expanduser().exists() for p in paths):
        raise CredentialsError(f"kubeconfig {where} does not exist; fix KUBECONFIG")
    if current is None:
        raise CredentialsError(f"kubeconfig {where} has no current-context; "
                               "run `kubectl config use-context NAME`")
    context = merged["contexts"].get(current)
    if context is None:
        raise CredentialsError(f"kubeconfig {where}: current-context {current!r} is not defined")
    cluster_name, user_name = context.get("cluster"), context.get("user")
    cluster = merged["clusters"].get(cluster_name)
    if cluster is None or not cluster.get("server"):
        raise CredentialsError(f"kubeconfig {where}: context {current!r} names cluster "
                               f"{cluster_name!r}, which is not defined or has no server")
    user = merged["users"].get(user_name, {}) if user_name else {}
    if "exec" in user or "auth-provider" in user:
        raise CredentialsError(
            f"kubeconfig {where}: user {user_name!r} uses an exec/auth-provider plugin, which "
            "the vpipe operator does not run; use a token (e.g. `kubectl create token SA`) or "
            "a client certificate, or run the operator in-cluster"
        )
    cbase = bases.get(("clusters", str(cluster_name)), Path("."))
    ubase = bases.get(("users", str(user_name)), Path("."))
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        origin=f"kubeconfig {where} (context {current})",
        ca_path=_path(cluster.get("certificate-authority"), cbase),
        ca_data=_b64(cluster.get("certificate-authority-data"), where, "certificate-authority-data"),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        token=user.get("token"),
        token_path=_path(user.get("tokenFile"), ubase),
        cert_path=_path(user.get("client-certificate"), ubase),
        key_path=_path(user.get("client-key"), ubase),
        cert_data=_b64(user.get("client-certificate-data"), where, "client-certificate-data"),
        key_data=_b64(user.get("client-key-data"), where, "client-key-data"),
        username=user.get("username"),
        password=user.get("password"),
        namespace=context.get("namespace"),
    )


def _path(value: Any, base: Path) -> str | None:
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return str(path if path.is_absolute() else base / path)


def _b64(value: Any, where: str, field: str) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as e:
        raise CredentialsError(f"kubeconfig {where}: {field} is not valid base64") from e


_token_cache: dict[str, tuple[float, str]] = {}


def _read_token(path: str) -> str:
    now = time.monotonic()
    cached = _token_cache.get(path)
    if cached is not None and now - cached[0] < TOKEN_REREAD_SECONDS:
        return cached[1]
    try:
        token = Path(path).read_text().strip()
    except OSError as e:
        raise CredentialsError(f"cannot read the API token file {path}: {e}") from e
    _token_cache[path] = (now, token)
    return token


def _materialize(cert: bytes | None, key: bytes | None) -> tuple[str | None, str | None]:
    """`ssl` loads client certificates only from files: write them once, readable by us only."""
    directory = tempfile.mkdtemp(prefix="vpipe-operator-")
    paths: list[str | None] = []
    for name, data in (("client.crt", cert), ("client.key", key)):
        if data is None:
            paths.append(None)
            continue
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        paths.append(path)
    return paths[0], paths[1]
