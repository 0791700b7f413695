"""Resolve a secretRef to its value: a mounted Secret file, or an env var in local mode.

Values are read once per instance start and live only inside the instance that sends them;
they are never logged, never rendered into /debug/config, never put into an error message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from vpipe_api.document import SecretRefDoc
from vpipe_proxy.errors import ConfigLoadError

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def env_var_name(ref: SecretRefDoc) -> str:
    """VPIPE_SECRET_<NAME>_<KEY>, upper-cased, other characters as '_'."""
    return "VPIPE_SECRET_" + _NOT_ALNUM.sub("_", f"{ref.name}_{ref.key}").upper()


def resolve_secret(ref: SecretRefDoc, secrets_dir: str, environ: Mapping[str, str]) -> str:
    """The secret's value; ConfigLoadError names both places looked at when it is missing."""
    path = Path(secrets_dir) / ref.name / ref.key
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        value = environ.get(env_var_name(ref), "").strip()
    except OSError as e:
        raise ConfigLoadError(f"secret {ref.name}/{ref.key}: cannot read {path}: {e.strerror}") from e
    if not value:
        raise ConfigLoadError(
            f"secret {ref.name}/{ref.key} not found: mount Secret '{ref.name}' at "
            f"{Path(secrets_dir) / ref.name} or set {env_var_name(ref)}"
        )
    return value
