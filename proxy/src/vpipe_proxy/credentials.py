"""Resolve a secretRef to its value: a mounted Secret file, or an env var in local mode.

Values are read once per instance start and live only inside the instance that sends them;
they are never logged, never rendered into /debug/config, never put into an error message.

A reference is a name, never a path: the name and key are checked as Kubernetes names (the
config document was validated, but the proxy does not trust it to have been), and the file read
must resolve inside `<secrets_dir>/<name>/`. Kubernetes mounts a Secret volume as
`<dir>/key -> ..data/key`, `..data -> ..2024_01_01_...`: those links stay inside the directory
and work; a link (or a key) leading anywhere else is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from vpipe_api.document import SecretRefDoc
from vpipe_api.secrets import header_value_problem, secret_ref_problem
from vpipe_proxy.errors import ConfigLoadError

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
MAX_SECRET_BYTES = 64 * 1024


def env_var_name(ref: SecretRefDoc) -> str:
    """VPIPE_SECRET_<NAME>_<KEY>, upper-cased, other characters as '_'."""
    return "VPIPE_SECRET_" + _NOT_ALNUM.sub("_", f"{ref.name}_{ref.key}").upper()


def resolve_secret(ref: SecretRefDoc, secrets_dir: str, environ: Mapping[str, str]) -> str:
    """The secret's value; ConfigLoadError names the secret and key (never the value) when it is
    missing, unreadable, outside the secrets directory, or not usable in an HTTP header."""
    where = f"secret {ref.name}/{ref.key}"
    problem = secret_ref_problem(ref.name, ref.key)
    if problem:
        raise ConfigLoadError(f"{where}: {problem}")
    directory = Path(secrets_dir) / ref.name
    path = directory / ref.key
    try:
        value = _read_inside(directory, path)
    except FileNotFoundError:
        value = environ.get(env_var_name(ref), "").strip()
    except OSError as e:
        raise ConfigLoadError(f"{where}: cannot read {path}: {e.strerror}") from e
    if not value:
        raise ConfigLoadError(
            f"{where} not found: mount Secret '{ref.name}' at {directory} or set "
            f"{env_var_name(ref)}"
        )
    problem = header_value_problem(value)
    if problem:
        raise ConfigLoadError(f"{where}: the value {problem}; it is sent in an HTTP header, so "
                              "store the bare key (no line breaks, no quotes around it)")
    return value


def _read_inside(directory: Path, path: Path) -> str:
    """The file's text, once every symlink on the way is known to stay inside `directory`."""
    try:
        root = directory.resolve(strict=True)
        target = path.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(path) from None
    except RuntimeError as e:  # a symlink loop
        raise OSError(0, f"symlink loop ({e})") from None
    secrets_root = directory.parent.resolve()
    if not (target.is_relative_to(root) and root.is_relative_to(secrets_root)):
        raise ConfigLoadError(
            f"secret {directory.name}/{path.name}: {path} leads outside {directory} (a symlink "
            "to elsewhere); the proxy reads secrets only from its secrets directory")
    if not target.is_file():  # a FIFO or device would block or never end
        raise ConfigLoadError(f"secret {directory.name}/{path.name}: {path} is not a file")
    with target.open("rb") as f:
        data = f.read(MAX_SECRET_BYTES + 1)
    if len(data) > MAX_SECRET_BYTES:
        raise ConfigLoadError(f"secret {directory.name}/{path.name}: longer than "
                              f"{MAX_SECRET_BYTES} bytes; an API key is far shorter")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigLoadError(f"secret {directory.name}/{path.name}: not UTF-8 text") from None
