"""Where API credentials come from (`credentials`): kubeconfig, service account, precedence.

Tokens (inline, tokenFile relative to the kubeconfig), client certificates as data, CA data,
insecure-skip-tls-verify, exec plugins refused with advice, broken kubeconfigs named in the
error, the in-cluster service account, and kopf getting the same endpoint and identity.
"""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml

from vpipe_operator.credentials import from_kubeconfig, load_credentials
from vpipe_operator.errors import CredentialsError
from vpipe_operator.handlers import connection_info


def kubeconfig(tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any] | None = None,
               name: str = "config") -> Path:
    doc = {
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "ns"}}],
        "clusters": [{"name": "k", "cluster": cluster or {"server": "https://k8s.example:6443/"}}],
        "users": [{"name": "u", "user": user}],
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def test_token_file_is_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    creds = from_kubeconfig([str(kubeconfig(tmp_path, {"tokenFile": "token"}))])
    assert creds.server == "https://k8s.example:6443"
    assert creds.current_token() == "from-file" and creds.namespace == "ns"
    info = connection_info(creds)
    assert info.server == creds.server and info.token == "from-file" and info.scheme == "Bearer"


def test_inline_token_and_insecure_tls(tmp_path: Path) -> None:
    creds = from_kubeconfig([str(kubeconfig(
        tmp_path, {"token": "abc"},
        {"server": "https://k8s.example", "insecure-skip-tls-verify": True}))])
    assert creds.current_token() == "abc"
    context = creds.ssl_context()
    assert context is not None and context.verify_mode == ssl.CERT_NONE


def test_certificate_data_is_decoded(tmp_path: Path) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    data = base64.b64encode(pem).decode()
    creds = from_kubeconfig([str(kubeconfig(
        tmp_path, {"client-certificate-data": data, "client-key-data": data},
        {"server": "https://k8s.example", "certificate-authority-data": data}))])
    assert creds.cert_data == pem and creds.key_data == pem and creds.ca_data == pem
    assert connection_info(creds).certificate_data == pem


def test_bad_certificate_data_is_reported(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="client-certificate-data is not valid base64"):
        from_kubeconfig([str(kubeconfig(tmp_path, {"client-certificate-data": "@@@"}))])


def test_exec_plugins_are_refused_with_advice(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match=r"exec/auth-provider plugin.*kubectl create token"):
        from_kubeconfig([str(kubeconfig(tmp_path, {"exec": {"command": "aws"}}))])


def test_first_kubeconfig_wins_when_merged(tmp_path: Path) -> None:
    first = kubeconfig(tmp_path, {"token": "one"}, name="a")
    second = kubeconfig(tmp_path, {"token": "two"}, name="b")
    creds = load_credentials({"KUBECONFIG": f"{first}:{second}"})
    assert creds.current_token() == "one"


def test_missing_context_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({"current-context": "gone", "contexts": []}))
    with pytest.raises(CredentialsError, match="current-context 'gone' is not defined"):
        from_kubeconfig([str(path)])


def test_service_account_in_cluster(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "namespace").write_text("vpipe-system")
    creds = load_credentials(
        {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443", "HOME": "/nowhere"},
        service_account_dir=tmp_path)
    assert creds.server == "https://10.0.0.1:443" and creds.current_token() == "sa-token"
    assert creds.namespace == "vpipe-system" and "in-cluster" in creds.origin


def test_nothing_found_says_what_was_tried(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="KUBECONFIG is unset"):
        load_credentials({"HOME": str(tmp_path)}, service_account_dir=tmp_path)
