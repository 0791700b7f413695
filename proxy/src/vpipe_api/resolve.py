"""Resolve a provider spec against its family into the complete config an instance needs."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from vpipe_api.document import ProviderConfig, SecretRefDoc, TimeoutsDoc
from vpipe_api.errors import Issue
from vpipe_api.families import FAMILIES, IN_PROCESS_FAMILIES
from vpipe_api.patterns import PatternError, compile_pattern
from vpipe_api.protocols import PROVIDER_ACCEPTS
from vpipe_api.resources import ProviderSpec
from vpipe_api.secrets import header_value_problem

DEFAULT_TIMEOUTS: Final = TimeoutsDoc(connect=10.0, first_byte=120.0, total=600.0)
DEFAULT_MAX_CONNECTIONS: Final = 100
MAX_URL_LENGTH: Final = 2048
_VISIBLE_ASCII: Final = re.compile(r"[\x21-\x7e]+")
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")  # an HTTP token


def resolve_provider(
    spec: ProviderSpec, resource: str, field: str
) -> tuple[ProviderConfig | None, list[Issue]]:
    """Merge family defaults into `spec`; return the config, or None and every issue found."""
    issues: list[Issue] = []

    def bad(sub: str, message: str) -> None:
        issues.append(Issue(resource, f"{field}.{sub}", message))

    family_name = spec.family or ("openai-compatible" if spec.base_url else None)
    if family_name is None:
        bad("family", "set a family (e.g. openai, deepseek, mock) or a baseUrl; known families: "
            + ", ".join(sorted(FAMILIES)))
        return None, issues
    family = FAMILIES.get(family_name)
    if family is None:
        bad("family", f"unknown family '{family_name}'; known families: "
            + ", ".join(sorted(FAMILIES)) + " (or omit family and give protocol and baseUrl)")
        return None, issues

    protocol = spec.protocol or family.protocol
    if protocol not in PROVIDER_ACCEPTS:
        bad("protocol", f"provider protocol '{protocol}' (family {family.name}) cannot be called "
            "by this version of vpipe yet; supported: " + ", ".join(sorted(PROVIDER_ACCEPTS)))

    base_url = spec.base_url or family.base_url
    if family.name in IN_PROCESS_FAMILIES:
        if spec.base_url:
            bad("baseUrl", f"family '{family.name}' is answered inside the proxy; remove baseUrl")
        base_url = None
    elif base_url is None:
        bad("baseUrl", f"family '{family.name}' has no default endpoint; set baseUrl "
            "(e.g. https://HOST/v1)")
    else:
        problem = base_url_problem(base_url)
        if problem:
            bad("baseUrl", problem)
        else:
            base_url = base_url.rstrip("/")


    for key in spec.model_map:
        try:
            compile_pattern(key)
        except PatternError as e:
            bad("modelMap", str(e))

    credentials = spec.credentials
    if family.credentials == "required" and credentials is None:
        bad("credentials", f"family '{family.name}' needs an API key: add credentials.secretRef "
            "{name: <secret>, key: <key>} pointing at a Secret in this namespace")
    if family.credentials == "none" and credentials is not None:
        bad("credentials", f"family '{family.name}' takes no credentials; remove them")

    for name, value in spec.headers.items():
        problem = header_problem(name, value)
        if problem:
            bad(f"headers.{name[:64]}", problem)

    if issues:
        return None, issues
    timeouts = spec.timeouts
    config = ProviderConfig(
        family=family.name,
        protocol=protocol,
        base_url=base_url,
        auth=family.auth if credentials else "none",
        credentials=(
            SecretRefDoc(name=credentials.secret_ref.name, key=credentials.secret_ref.key)
            if credentials else None
        ),
        headers={**family.headers, **{k.lower(): v for k, v in spec.headers.items()}},
        model_map=dict(spec.model_map),
        timeouts=TimeoutsDoc(
            connect=(timeouts and timeouts.connect) or DEFAULT_TIMEOUTS.connect,
            first_byte=(timeouts and timeouts.first_byte) or DEFAULT_TIMEOUTS.first_byte,
            total=(timeouts and timeouts.total) or DEFAULT_TIMEOUTS.total,
        ),
        max_connections=spec.max_connections or DEFAULT_MAX_CONNECTIONS,
    )
    return config, []


def provider_config_problems(config: ProviderConfig) -> list[tuple[str, str]]:
    """(field, problem) for what a resolved provider config cannot be sent as: its base URL and
    extra headers. The proxy checks a loaded document with it, as validation checked the spec."""
    problems = []
    if config.base_url is not None and (problem := base_url_problem(config.base_url)):
        problems.append(("baseUrl", problem))
    for name, value in config.headers.items():
        if problem := header_problem(name, value):
            problems.append((f"headers.{name[:64]}", problem))
    return problems


def header_problem(name: str, value: str) -> str | None:
    """Why an extra header cannot be sent as written, or None."""
    if not _HEADER_NAME.fullmatch(name):
        return (f"header name {name[:64]!r} is not an HTTP token: letters, digits and "
                "!#$%&'*+-.^_`|~ only, at most 256")
    problem = header_value_problem(value)
    if problem:
        return f"the value of header '{name}' {problem}; write it on one line, in ASCII"
    return None


def base_url_problem(url: str) -> str | None:
    """What is wrong with an upstream base URL, or None. Validation and the proxy's loader both
    apply it, and it is at least as strict as the upstream client's own parsing."""
    if len(url) > MAX_URL_LENGTH or not _VISIBLE_ASCII.fullmatch(url):
        return (f"{url[:80]!r} must be at most {MAX_URL_LENGTH} visible ASCII characters (no "
                "spaces or line breaks; percent-encode the path, punycode the host)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as e:
        return f"'{url}' is not a valid URL ({e}); write it like https://api.example.com/v1"
    if parts.port == 0:
        return f"'{url}' has port 0; give the upstream's port, or none for 80/443"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"'{url}' is not an http(s) URL with a host; write it like https://api.example.com/v1"
    if parts.query or parts.fragment:
        return f"'{url}' must not carry a query or fragment"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are not allowed; use credentials.secretRef"
    return None
