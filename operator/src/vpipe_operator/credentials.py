"""Where Kubernetes API credentials come from: the official `kubernetes` client's config loading.

The operator, the webhook and the CLI all call `load_credentials`, and kopf logs in with the same
`Credentials` (the login handler), so every part talks to the same cluster as the same identity.
Precedence follows kubectl: `$KUBECONFIG` (files merged, first wins) when set, else the
in-cluster service account, else `~/.kube/config`.

Reading kubeconfigs is left to the maintained `kubernetes` package rather than done here: it runs
`exec` plugins (EKS, GKE, AKS, kubelogin), OIDC `auth-provider`s, reads tokens, certificate and
CA files or data, `insecure-skip-tls-verify`, `proxy-url`, and re-runs an exec plugin when its
credential expires. What we keep is a small typed view (`Credentials`) that our aiohttp clients
and kopf consume. This module never logs a token or a key.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kubernetes.client import Configuration
from kubernetes.config import incluster_config, kube_config
from kubernetes.config.config_exception import ConfigException

from vpipe_operator.errors import CredentialsError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
AUTH_KEY = "BearerToken"  # where the kubernetes client keeps the whole Authorization value


@dataclasses.dataclass(frozen=True)
class Credentials:
    """One API endpoint and how to authenticate to it."""

    server: str
    origin: str  # for messages: "kubeconfig /path (context kind-vpipe)", "in-cluster ..."
    ca_path: str | None = None
    insecure: bool = False
    token: str | None = dataclasses.field(default=None, repr=False)
    cert_path: str | None = None
    key_path: str | None = None
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    namespace: str | None = None
    proxy: str | None = None
    # The bearer token now: re-runs an expired exec plugin, re-reads a rotated service-account
    # token. Blocking (a subprocess at most once per credential lifetime), hence not per request
    # in a hot loop: our clients call it once per API request, like client-go.
    refresh: Callable[[], str | None] | None = dataclasses.field(
        default=None, repr=False, compare=False)

    def current_token(self) -> str | None:
        """The bearer token to send now (refreshed when the source says it expired)."""
        if self.refresh is not None:
            return self.refresh()
        return self.token

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS settings for https servers; None for plain http (test servers)."""
        if not self.server.startswith("https://"):
            return None
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(cafile=self.ca_path)
        if self.cert_path is not None:
            try:
                context.load_cert_chain(self.cert_path, self.key_path)
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
        return from_service_account(environ, service_account_dir)
    home = Path(environ.get("HOME", "~")).expanduser() / ".kube" / "config"
    if home.exists():
        return from_kubeconfig([str(home)])
    raise CredentialsError(
        "no Kubernetes credentials found: KUBECONFIG is unset, this is not a pod with a "
        f"service account ({service_account_dir}/token), and {home} does not exist. "
        "Set KUBECONFIG or run in-cluster"
    )


def from_service_account(environ: Mapping[str, str], directory: Path) -> Credentials:
    """The pod's service account; its projected token is re-read as it rotates."""
    config = Configuration()
    loader = incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
        token_filename=str(directory / "token"), cert_filename=str(directory / "ca.crt"),
        environ=environ)
    origin = f"in-cluster service account ({directory})"
    try:
        loader.load_and_set(config)  # type: ignore[no-untyped-call]
    except ConfigException as e:
        raise CredentialsError(f"{origin}: {e}") from e
    namespace_file = directory / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.exists() else None
    return _from_configuration(config, origin, namespace)


def from_kubeconfig(paths: list[str]) -> Credentials:
    """The current context of the kubeconfig files, merged as kubectl merges them."""
    where = ", ".join(paths)
    existing = [p for p in paths if Path(p).expanduser().exists()]
    if not existing:
        raise CredentialsError(f"kubeconfig {where} does not exist; fix KUBECONFIG")
    config = Configuration()
    try:
        merged = kube_config.KubeConfigMerger(  # type: ignore[no-untyped-call]
            os.pathsep.join(existing))
        if merged.config is None:
            raise CredentialsError(f"kubeconfig {where} holds no configuration")
        loader = kube_config.KubeConfigLoader(  # type: ignore[no-untyped-call]
            config_dict=merged.config, config_base_path=None)
        context = loader.current_context
        origin = f"kubeconfig {where} (context {context['name']})"
        loader.load_and_set(config)  # type: ignore[no-untyped-call]
    except (ConfigException, KeyError, TypeError, ValueError, OSError) as e:
        raise CredentialsError(f"kubeconfig {where}: {_reason(e)}") from e
    if not config.host or config.host == Configuration().host:
        raise CredentialsError(f"{origin}: its cluster has no server")
    user = _user(merged.config.value, context)
    if ("exec" in user or "auth-provider" in user) and not (
            config.api_key.get(AUTH_KEY) or config.cert_file):
        # The client logs a failing plugin and carries on without credentials: stop here instead.
        plugin = "exec plugin" if "exec" in user else "auth-provider"
        raise CredentialsError(
            f"{origin}: the user's {plugin} gave no credential (its error is logged above); "
            "check that `kubectl get ns` works with this kubeconfig")
    return _from_configuration(config, origin, context["context"].get("namespace"))


def _from_configuration(config: Configuration, origin: str,
                        namespace: str | None) -> Credentials:
    scheme, _, value = str(config.api_key.get(AUTH_KEY) or "").strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    username = password = None
    if scheme == "basic":
        username, password = _basic(value, origin)

    def refresh() -> str | None:
        header = config.get_api_key_with_prefix(AUTH_KEY) or ""
        kind, _, token = header.strip().partition(" ")
        return token.strip() if kind.lower() == "bearer" and token.strip() else None

    return Credentials(
        server=str(config.host).rstrip("/"),
        origin=origin,
        ca_path=config.ssl_ca_cert or None,
        insecure=not config.verify_ssl,
        token=value if scheme == "bearer" else None,
        cert_path=config.cert_file or None,
        key_path=config.key_file or None,
        username=username,
        password=password,
        namespace=namespace,
        proxy=config.proxy or None,
        refresh=refresh if config.refresh_api_key_hook is not None else None,
    )


def _user(merged: Any, context: Any) -> Mapping[str, Any]:
    name = context["context"].get("user")
    for node in merged.get("users") or []:
        entry = getattr(node, "value", node)  # the merger wraps each entry in a ConfigNode
        if entry.get("name") == name:
            return entry.get("user") or {}
    return {}


def _basic(value: str, origin: str) -> tuple[str, str]:
    try:
        username, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as e:
        raise CredentialsError(f"{origin}: the basic-auth user cannot be decoded") from e
    return username, password


def _reason(e: BaseException) -> str:
    if isinstance(e, KeyError):
        return f"{e.args[0] if e.args else e} is missing"
    return str(e) or type(e).__name__
