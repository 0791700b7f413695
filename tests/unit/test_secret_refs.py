"""Secret references are names, never paths; secret values must be header-safe.

Aspects: the pure checks in vpipe_api.secrets agree with the pydantic models (resource and
document) and with Kubernetes' own rule for data keys, over generated keys; the proxy's loader
reads a real Kubernetes-style Secret volume (..data symlinks) and refuses keys that are paths,
symlinks that leave the Secret's directory, and values that would break an HTTP header, naming
the secret and key but never the value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpipe_api.document import SecretRefDoc
from vpipe_api.resources import SecretKeyRef
from vpipe_api.secrets import header_value_problem, secret_key_problem, secret_name_problem
from vpipe_proxy.credentials import resolve_secret
from vpipe_proxy.errors import ConfigLoadError

# Kubernetes' rule (IsConfigMapKey): [-._a-zA-Z0-9]+, at most 253, and not "." or "..".
K8S_KEY = re.compile(r"[-._a-zA-Z0-9]+")
PATH_KEYS = ["/etc/passwd", "../../var/run/secrets/kubernetes.io/serviceaccount/token",
             "..", ".", "a/../../b", "sub/key", "key\x00", "~/key", "key\n"]
SECRET = "sk-test-0123456789abcdef"


def k8s_accepts_key(key: str) -> bool:
    return bool(K8S_KEY.fullmatch(key)) and len(key) <= 253 and key not in (".", "..")


@given(st.text(alphabet="-._aZ09/\\ \n~", max_size=8) | st.sampled_from(PATH_KEYS))
def test_key_check_is_kubernetes_rule(key: str) -> None:
    assert (secret_key_problem(key) is None) == k8s_accepts_key(key)
    model_ok = doc_ok = True
    try:
        SecretKeyRef(name="openai", key=key)
    except pydantic.ValidationError:
        model_ok = False
    try:
        SecretRefDoc(name="openai", key=key)
    except pydantic.ValidationError:
        doc_ok = False
    assert model_ok == doc_ok == k8s_accepts_key(key)


@pytest.mark.parametrize("name", ["../x", "/abs", "UPPER", "a/b", "", "x" * 254])
def test_names_that_are_not_secret_names(name: str) -> None:
    assert secret_name_problem(name) is not None
    with pytest.raises(pydantic.ValidationError):
        SecretRefDoc(name=name, key="api-key")


@given(st.text(max_size=12))
def test_header_safe_values(value: str) -> None:
    safe = bool(value) and value == value.strip(" ") and all(
        c == " " or 0x21 <= ord(c) <= 0x7E for c in value) and "  " not in value
    assert (header_value_problem(value) is None) == safe


def kubernetes_secret_volume(directory: Path, data: dict[str, str]) -> Path:
    """The layout kubelet writes for a Secret volume: a timestamped dir, `..data` pointing at
    it, and one symlink per key through `..data`."""
    directory.mkdir(parents=True)
    stamped = directory / "..2026_12_04_03_00_00.123456789"
    stamped.mkdir()
    for key, value in data.items():
        (stamped / key).write_text(value)
    os.symlink(stamped.name, directory / "..data")
    for key in data:
        os.symlink(f"..data/{key}", directory / key)
    return directory


def ref(name: str, key: str) -> SecretRefDoc:
    return SecretRefDoc.model_construct(name=name, key=key)  # as a tampered document would


def test_a_kubernetes_secret_volume_is_read_through_its_symlinks(tmp_path: Path) -> None:
    kubernetes_secret_volume(tmp_path / "secrets" / "openai", {"api-key": SECRET + "\n"})
    assert resolve_secret(ref("openai", "api-key"), str(tmp_path / "secrets"), {}) == SECRET


@pytest.mark.parametrize("key", PATH_KEYS)
def test_a_key_that_is_a_path_is_refused_by_the_loader(tmp_path: Path, key: str) -> None:
    (tmp_path / "token").write_text("service-account-token")
    kubernetes_secret_volume(tmp_path / "secrets" / "openai", {"api-key": SECRET})
    with pytest.raises(ConfigLoadError, match="not a Secret key") as info:
        resolve_secret(ref("openai", key), str(tmp_path / "secrets"), {})
    assert "service-account-token" not in str(info.value)


def test_a_symlink_leading_outside_the_secret_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("service-account-token")
    kubernetes_secret_volume(tmp_path / "secrets" / "openai", {"api-key": SECRET})
    os.symlink(tmp_path / "token", tmp_path / "secrets" / "openai" / "stolen")
    os.symlink("../other", tmp_path / "secrets" / "openai" / "sideways")
    (tmp_path / "secrets" / "other").mkdir()
    (tmp_path / "secrets" / "other" / "sideways").write_text("another secret's value")
    for key in ("stolen", "sideways"):
        with pytest.raises(ConfigLoadError, match="leads outside") as info:
            resolve_secret(ref("openai", key), str(tmp_path / "secrets"), {})
        assert "service-account-token" not in str(info.value)


def test_a_secret_directory_that_links_elsewhere_is_refused(tmp_path: Path) -> None:
    kubernetes_secret_volume(tmp_path / "elsewhere", {"api-key": SECRET})
    (tmp_path / "secrets").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "secrets" / "openai")
    with pytest.raises(ConfigLoadError, match="leads outside"):
        resolve_secret(ref("openai", "api-key"), str(tmp_path / "secrets"), {})


@pytest.mark.parametrize(("value", "says"), [
    ("sk-abc\r\nX-Injected: 1", "line break"),
    ("sk-abc\ndef", "line break"),
    ("sk-ключ", "visible ASCII"),
    ("sk-abc\x00", "visible ASCII"),
    ("sk\tabc", "visible ASCII"),
])
def test_a_value_that_breaks_a_header_is_a_load_error(tmp_path: Path, value: str,
                                                       says: str) -> None:
    kubernetes_secret_volume(tmp_path / "secrets" / "openai", {"api-key": value})
    with pytest.raises(ConfigLoadError, match=says) as info:
        resolve_secret(ref("openai", "api-key"), str(tmp_path / "secrets"), {})
    message = str(info.value)
    assert "secret openai/api-key" in message and "sk-" not in message.replace("openai", "")
    with pytest.raises(ConfigLoadError, match=says):  # env vars (local mode) are checked too
        resolve_secret(ref("missing", "api-key"), str(tmp_path / "secrets"),
                       {"VPIPE_SECRET_MISSING_API_KEY": value})


def test_a_fifo_is_not_read(tmp_path: Path) -> None:
    kubernetes_secret_volume(tmp_path / "secrets" / "openai", {"api-key": SECRET})
    os.mkfifo(tmp_path / "secrets" / "openai" / "pipe")
    with pytest.raises(ConfigLoadError, match="not a file"):
        resolve_secret(ref("openai", "pipe"), str(tmp_path / "secrets"), {})
