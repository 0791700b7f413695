"""Where API credentials come from (`credentials`): kubeconfig, service account, precedence.

Tokens (inline, tokenFile relative to the kubeconfig), client certificates as data, CA data,
insecure-skip-tls-verify, exec plugins (run, renewed on expiry, failures reported), broken
kubeconfigs named in the error, the in-cluster service account, and kopf getting the same
endpoint and identity.
"""

from __future__ import annotations

import base64
import ssl
import sys
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


def test_certificate_data_is_written_to_files_for_tls(tmp_path: Path) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    data = base64.b64encode(pem).decode()
    creds = from_kubeconfig([str(kubeconfig(
        tmp_path, {"client-certificate-data": data, "client-key-data": data},
        {"server": "https://k8s.example", "certificate-authority-data": data}))])
    assert creds.cert_path and creds.key_path and creds.ca_path
    assert Path(creds.cert_path).read_bytes() == pem and Path(creds.ca_path).read_bytes() == pem
    info = connection_info(creds)
    assert info.certificate_path == creds.cert_path and info.ca_path == creds.ca_path


def test_basic_auth_user(tmp_path: Path) -> None:
    creds = from_kubeconfig([str(kubeconfig(tmp_path, {"username": "ann", "password": "s3cret"}))])
    assert (creds.username, creds.password, creds.current_token()) == ("ann", "s3cret", None)
    assert "s3cret" not in repr(creds)


def exec_plugin(tmp_path: Path, *, expires_in: int | None, fail: bool = False) -> Path:
    """A kubeconfig `exec` plugin: prints an ExecCredential, counts its runs in `runs`."""
    script = tmp_path / "plugin.py"
    expiry = "" if expires_in is None else (
        f"status['expirationTimestamp'] = (datetime.datetime.now(datetime.timezone.utc)"
        f" + datetime.timedelta(seconds={expires_in})).strftime('%Y-%m-%dT%H:%M:%SZ')")
    script.write_text(f"""\
import datetime, json, pathlib, sys
runs = pathlib.Path({str(tmp_path / "runs")!r})
n = int(runs.read_text()) + 1 if runs.exists() else 1
runs.write_text(str(n))
if {fail!r}:
    sys.exit("plugin: not logged in")
status = {{"token": f"exec-token-{{n}}"}}
{expiry}
print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": status}}))
""")
    return script


def test_exec_plugin_supplies_the_token(tmp_path: Path) -> None:
    script = exec_plugin(tmp_path, expires_in=3600)
    creds = from_kubeconfig([str(kubeconfig(tmp_path, {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
        "args": [str(script)], "interactiveMode": "Never"}}))])
    assert creds.current_token() == "exec-token-1" and creds.current_token() == "exec-token-1"
    assert connection_info(creds).token == "exec-token-1"
    assert (tmp_path / "runs").read_text() == "1"  # not re-run while the credential is valid


def test_expired_exec_credential_is_renewed(tmp_path: Path) -> None:
    script = exec_plugin(tmp_path, expires_in=-60)  # already expired: every use renews it
    creds = from_kubeconfig([str(kubeconfig(tmp_path, {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
        "args": [str(script)], "interactiveMode": "Never"}}))])
    first, second = creds.current_token(), creds.current_token()
    assert first != second and second is not None and second.startswith("exec-token-")


def test_failing_exec_plugin_is_an_error_not_anonymous_access(tmp_path: Path) -> None:
    script = exec_plugin(tmp_path, expires_in=None, fail=True)
    with pytest.raises(CredentialsError, match=r"exec plugin gave no credential"):
        from_kubeconfig([str(kubeconfig(tmp_path, {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
            "args": [str(script)], "interactiveMode": "Never"}}))])


def test_first_kubeconfig_wins_when_merged(tmp_path: Path) -> None:
    first = kubeconfig(tmp_path, {"token": "one"}, name="a")
    second = kubeconfig(tmp_path, {"token": "two"}, name="b")
    creds = load_credentials({"KUBECONFIG": f"{first}:{second}"})
    assert creds.current_token() == "one"


def test_missing_context_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({"current-context": "gone", "contexts": []}))
    with pytest.raises(CredentialsError, match=r"kubeconfig .*config: .*gone"):
        from_kubeconfig([str(path)])


def test_missing_kubeconfig_is_named(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match=r"kubeconfig .*nope does not exist"):
        load_credentials({"KUBECONFIG": str(tmp_path / "nope")})


def test_service_account_in_cluster(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "namespace").write_text("vpipe-system")
    creds = load_credentials(
        {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443", "HOME": "/nowhere"},
        service_account_dir=tmp_path)
    assert creds.server == "https://10.0.0.1:443" and creds.current_token() == "sa-token"
    assert creds.namespace == "vpipe-system" and "in-cluster" in creds.origin
    assert creds.ca_path == str(tmp_path / "ca.crt")


def test_nothing_found_says_what_was_tried(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="KUBECONFIG is unset"):
        load_credentials({"HOME": str(tmp_path)}, service_account_dir=tmp_path)
