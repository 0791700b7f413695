"""What a secret reference and a secret value may look like: pure checks shared by the CR
models, the CRD schema, validation and the proxy's loader.

A reference names a Secret and a key in it, as Kubernetes spells them; it can never be read as
a path (no '/', no '..'). A value ends up in an HTTP header, so it must be visible ASCII: a line
break in it would let it inject headers, and anything else the upstream cannot read anyway.
"""

from __future__ import annotations

import re
from typing import Final

SECRET_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""A Kubernetes object name (DNS subdomain), at most 253 characters."""
SECRET_KEY_PATTERN: Final = (
    r"^([-_a-zA-Z0-9][-._a-zA-Z0-9]*|\.[-_a-zA-Z0-9][-._a-zA-Z0-9]*|\.\.[-._a-zA-Z0-9]+)$")
"""A Kubernetes Secret data key: letters, digits, '-', '_', '.', neither '.' nor '..' (spelled
without look-ahead: the API server checks CRD patterns with an RE2-like engine)."""
MAX_NAME_LENGTH: Final = 253

_NAME = re.compile(SECRET_NAME_PATTERN)
_KEY = re.compile(SECRET_KEY_PATTERN)
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")  # visible ASCII, inner spaces


def secret_name_problem(name: str) -> str | None:
    """Why `name` is not a Secret name, or None."""
    if not name or len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        return (f"{name[:80]!r} is not a Secret name: lower-case letters, digits, '-' and '.', "
                f"starting and ending with a letter or digit, at most {MAX_NAME_LENGTH} characters")
    return None


def secret_key_problem(key: str) -> str | None:
    """Why `key` is not a Secret data key, or None. A key is never a path."""
    if len(key) > MAX_NAME_LENGTH or not _KEY.fullmatch(key):
        return (f"{key[:80]!r} is not a Secret key: letters, digits, '-', '_' and '.' only (no "
                f"'/'), not '.' or '..', at most {MAX_NAME_LENGTH} characters")
    return None


def secret_ref_problem(name: str, key: str) -> str | None:
    """Why `name`/`key` is not a reference to a Secret's key, or None."""
    return secret_name_problem(name) or secret_key_problem(key)


def header_value_problem(value: str) -> str | None:
    """Why `value` cannot be sent as an HTTP header value, or None. Never quotes the value:
    callers use it on credentials."""
    if _HEADER_SAFE.fullmatch(value):
        return None
    if "\r" in value or "\n" in value:
        return "contains a line break"
    if not value.strip():
        return "is empty"
    return "contains characters other than visible ASCII (control, non-ASCII or edge spaces)"
