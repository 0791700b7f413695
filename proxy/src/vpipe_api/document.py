"""The versioned config document: what the renderer writes and the proxy reads.

It is the contract between operator and proxy (the ConfigMap `vpipe-config`, key `config.json`).
It carries `configVersion` so a proxy meeting a version it does not know keeps its last good
config and says "expected X, got Y", and a content `revision` so every party can tell which
config is loaded. It never holds a secret, only references to them.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from vpipe_api.errors import DocumentError
from vpipe_api.patterns import ModelMap
from vpipe_api.secrets import MAX_NAME_LENGTH, SECRET_KEY_PATTERN, SECRET_NAME_PATTERN

CONFIG_VERSION: Final = "vpipe.io/config.v1"
CONFIGMAP_NAME: Final = "vpipe-config"
CONFIGMAP_KEY: Final = "config.json"
REVISION_ANNOTATION: Final = "vpipe.io/revision"
MANAGED_LABELS: Final = {"app.kubernetes.io/managed-by": "vpipe", "app.kubernetes.io/name": "vpipe"}


class _Doc(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )


class SecretRefDoc(_Doc):
    """A Secret's name and key, checked as names again: the proxy reads a file by them."""

    name: str = Field(pattern=SECRET_NAME_PATTERN, max_length=MAX_NAME_LENGTH)
    key: str = Field(pattern=SECRET_KEY_PATTERN, max_length=MAX_NAME_LENGTH)


class TimeoutsDoc(_Doc):
    connect: float
    first_byte: float
    total: float


class ProviderConfig(_Doc):
    """A provider instance with every family default resolved."""

    family: str
    protocol: str
    base_url: str | None
    auth: str
    credentials: SecretRefDoc | None
    headers: dict[str, str] = Field(default_factory=dict)
    model_map: dict[str, str] = Field(default_factory=dict)
    timeouts: TimeoutsDoc
    max_connections: int


class InstanceDoc(_Doc):
    """One static module instance, shared by every pipeline that uses the same config."""

    type: str
    config: dict[str, Any]


class ModuleRefDoc(_Doc):
    name: str
    type: str
    instance: str  # key into ConfigDocument.instances


class PipelineDoc(_Doc):
    modules: list[ModuleRefDoc]
    accepts: list[str]  # client protocols the chain serves
    hints: str = "drop"  # drop | refuse: what the llmswitch does with hint fields


class CanaryDoc(_Doc):
    pipeline: str
    weight: int
    mode: str  # split | shadow
    stickiness_header: str | None = None


class RouteDoc(_Doc):
    name: str
    priority: int
    pipeline: str
    models: list[str]
    protocols: list[str]
    path_prefix: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    canary: CanaryDoc | None = None


class ConfigDocument(_Doc):
    """Everything one namespace's proxies need, rendered from its Pipelines and Routes."""

    config_version: str = CONFIG_VERSION
    revision: str = ""
    namespace: str
    instances: dict[str, InstanceDoc]
    pipelines: dict[str, PipelineDoc]
    routes: list[RouteDoc]  # highest priority first, then by name

    def upstream_model(self, pipeline: str, model: str) -> tuple[str, str, str | None]:
        """(provider module name, the model name it sends upstream, the modelMap key that
        matched or None) for `model` served by `pipeline`."""
        module = self.pipelines[pipeline].modules[-1]
        mapping = self.instances[module.instance].config.get("modelMap") or {}
        upstream, key = ModelMap(dict(mapping)).lookup(model)
        return module.name, upstream, key

    def content_revision(self) -> str:
        """Hash of everything but the revision field itself."""
        body = self.model_dump(by_alias=True, exclude={"revision"})
        return hashlib.sha256(canonical_json(body)).hexdigest()[:16]

    def with_revision(self) -> ConfigDocument:
        return self.model_copy(update={"revision": self.content_revision()})

    def to_json(self) -> bytes:
        return orjson.dumps(
            self.model_dump(by_alias=True), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
        )


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON used for hashing (sorted keys, no whitespace)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def instance_key(type_: str, config: dict[str, Any]) -> str:
    """Identity of a module instance: equal normalized configs share one instance."""
    digest = hashlib.sha256(canonical_json({"type": type_, "config": config})).hexdigest()
    return f"{type_}-{digest[:12]}"


def parse_document(raw: bytes | str) -> ConfigDocument:
    """Read a rendered document; refuse unknown versions and revisions that do not match."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise DocumentError(f"config document is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise DocumentError("config document must be a JSON object")
    version = data.get("configVersion")
    if version != CONFIG_VERSION:
        raise DocumentError(
            f"config document has configVersion {version!r}; this proxy reads "
            f"{CONFIG_VERSION!r}: upgrade the proxy or render with a matching operator"
        )
    try:
        document = ConfigDocument.model_validate(data)
    except ValidationError as e:
        raise DocumentError(f"config document is malformed: {e}") from e
    if document.revision != document.content_revision():
        raise DocumentError(
            f"config document revision {document.revision!r} does not match its content "
            f"({document.content_revision()!r}); it was edited by hand: render it again"
        )
    for key, instance in document.instances.items():
        # The proxy reuses a live instance by key: a key that does not hash its config would
        # keep an old instance serving a config nobody built or checked.
        if instance_key(instance.type, instance.config) != key:
            raise DocumentError(
                f"config document instance {key!r} does not match its config (the key is a hash "
                "of it); it was edited by hand: render it again"
            )
    for name, pipeline in document.pipelines.items():
        for module in pipeline.modules:
            if module.instance not in document.instances:
                raise DocumentError(
                    f"pipeline {name!r} module {module.name!r} refers to instance "
                    f"{module.instance!r}, which the document does not define"
                )
    for route in document.routes:
        for name in (route.pipeline, route.canary.pipeline if route.canary else route.pipeline):
            if name not in document.pipelines:
                raise DocumentError(
                    f"route {route.name!r} refers to pipeline {name!r}, "
                    "which the document does not define"
                )
    return document
