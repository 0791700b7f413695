"""Pydantic models of the `Pipeline` and `Route` custom resources (vpipe.io/v1alpha1).

These are the user-facing schema: field names, descriptions and bounds here become the CRDs.
They check what one resource can check on its own; rules that span resources (references,
priority ties, protocol guards) live in `validation`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from vpipe_api.analysis import BUILTIN_METRICS, PLACEHOLDERS, duration_seconds, unknown_placeholders
from vpipe_api.protocols import ClientProtocol, ProviderProtocol
from vpipe_api.secrets import MAX_NAME_LENGTH, SECRET_KEY_PATTERN

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

# Field names that would carry a secret inline; the config document must only hold references.
INLINE_SECRET_FIELDS = frozenset(
    {"apiKey", "api_key", "apikey", "key", "token", "password", "secret", "bearer",
     "accessToken", "access_token"}
)
SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization"})

Name = Annotated[str, Field(pattern=DNS_SUBDOMAIN, min_length=1, max_length=253)]
MAX_METRICS = 10  # analysis metrics per canary
MAX_STEPS = 10  # rollout steps per canary; bounds the CRD's CEL rule (unrolled, no ranges in CEL)


class _Spec(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )


class ObjectMeta(BaseModel):
    """The parts of Kubernetes object metadata vpipe reads; the rest is ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: Name
    namespace: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)] = "default"
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class SecretKeyRef(_Spec):
    """A key in a Kubernetes Secret in the resource's namespace."""

    name: Name = Field(description="Name of the Secret.")
    key: str = Field(default="api-key", min_length=1, max_length=MAX_NAME_LENGTH,
                     pattern=SECRET_KEY_PATTERN,
                     description="Key inside the Secret: letters, digits, '-', '_', '.' (a "
                     "name, never a path).")


class Credentials(_Spec):
    """Where the provider's API key comes from. Keys are never written inline."""

    secret_ref: SecretKeyRef = Field(
        description="Secret holding the API key; the proxy reads it from the mounted file or "
        "from the env var VPIPE_SECRET_<NAME>_<KEY>."
    )


class ProviderTimeouts(_Spec):
    """Upstream timeouts in seconds; unset fields take the proxy defaults."""

    connect: float | None = Field(default=None, gt=0, le=600, description="Seconds to connect.")
    first_byte: float | None = Field(
        default=None, gt=0, le=3600, description="Seconds from request sent to response headers."
    )
    total: float | None = Field(
        default=None, gt=0, le=86400, description="Seconds for the whole exchange, streams included."
    )


class ProviderSpec(_Spec):
    """An upstream model API. `family` supplies defaults; explicit fields override them."""

    family: str | None = Field(
        default=None, description="Config-library entry (openai, deepseek, mock, ...)."
    )
    protocol: ProviderProtocol | None = Field(
        default=None, description="Wire protocol the upstream speaks; defaults from the family."
    )
    base_url: str | None = Field(
        default=None, description="Upstream base URL, e.g. https://api.deepseek.com/v1."
    )
    credentials: Credentials | None = Field(default=None, description="API key reference.")
    timeouts: ProviderTimeouts | None = Field(default=None, description="Upstream timeouts.")
    max_connections: int | None = Field(
        default=None, ge=1, le=10000, description="Keep-alive connections kept to the upstream."
    )
    model_map: dict[str, str] = Field(
        default_factory=dict,
        description="Client model name -> upstream model name. Keys are exact names, globs "
        "(claude-opus-*) or 're:<regex>'; an exact key wins, else the most specific pattern, "
        "and '*' is the default. Names nothing matches pass unchanged.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers (never credentials)."
    )

    @model_validator(mode="before")
    @classmethod
    def _reject_inline_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key in INLINE_SECRET_FIELDS:
                    raise ValueError(
                        f"inline secret field '{key}' is not allowed: put the key in a Secret "
                        "and reference it with credentials.secretRef {name, key}"
                    )
            headers = data.get("headers")
            if isinstance(headers, dict):
                for header in headers:
                    if str(header).lower() in SECRET_HEADERS:
                        raise ValueError(
                            f"header '{header}' would put a credential in the config: remove it "
                            "and use credentials.secretRef; the family decides how it is sent"
                        )
        return data


RuleOp = Literal["rename", "drop", "default", "clamp", "mapFinishReason", "moveReasoning"]


class CompatRule(_Spec):
    """One rewrite. Which fields are used depends on `op`."""

    op: RuleOp = Field(description="rename (field -> to), drop (field), default (field, value), "
                       "clamp (field, min, max), mapFinishReason (value -> to), moveReasoning "
                       "(field -> to, in reply messages and stream deltas).")
    field: str | None = Field(default=None, min_length=1, max_length=128,
                              description="Request field (dots reach into objects, e.g. "
                              "stream_options.include_usage), or the reply field for moveReasoning.")
    to: str | None = Field(default=None, min_length=1, max_length=128,
                           description="New field name (rename, moveReasoning) or finish reason "
                           "(mapFinishReason).")
    value: str | None = Field(default=None, max_length=4096,
                              description="default: a JSON value, e.g. '0.7' or '\"text\"'. "
                              "mapFinishReason: the provider's finish reason.")
    min: float | None = Field(default=None, description="clamp: lowest value allowed.")
    max: float | None = Field(default=None, description="clamp: highest value allowed.")

    @model_validator(mode="after")
    def _fields_for_op(self) -> CompatRule:
        needs = {"rename": ("field", "to"), "drop": ("field",), "default": ("field", "value"),
                 "clamp": ("field",), "mapFinishReason": ("value", "to"),
                 "moveReasoning": ("field",)}[self.op]
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"op {self.op} needs {', '.join(missing)}")
        if self.op == "clamp" and self.min is None and self.max is None:
            raise ValueError("op clamp needs min, max or both")
        if self.op == "default":
            try:
                orjson.loads(self.value or "")
            except orjson.JSONDecodeError as e:
                raise ValueError(f"value {self.value!r} is not JSON ({e}); quote strings, "
                                 "e.g. '\"auto\"'") from e
        return self


class CompatibilitySpec(_Spec):
    """A preset by provider family and/or custom rules, applied in that order."""

    preset: str | None = Field(default=None, description="Preset name: " + ", ".join(
        ["deepseek", "glm", "qwen", "lmstudio", "ollama", "vllm", "azure-openai"]) + ".")
    rules: list[CompatRule] = Field(default_factory=list, description="Custom rules, applied "
                                    "after the preset's.")


class ModuleSpec(_Spec):
    """One stage of a pipeline: a `type` and the configuration member of the same name."""

    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)] | None = Field(
        default=None, description="Name used in metrics and errors; defaults to the type."
    )
    type: Literal["provider", "compatibility"] = Field(description="Module type.")
    provider: ProviderSpec | None = Field(default=None, description="Set when type is provider.")
    compatibility: CompatibilitySpec | None = Field(
        default=None, description="Set when type is compatibility: rewrite rules for a "
        "provider's quirks, placed before an openai-chat provider.")

    @model_validator(mode="after")
    def _member_matches_type(self) -> ModuleSpec:
        if getattr(self, self.type) is None:
            raise ValueError(f"type is '{self.type}' but the '{self.type}' member is missing")
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.type


class PipelineSpec(_Spec):
    """An ordered chain of modules ending in a provider."""

    description: str | None = Field(default=None, description="Free text for humans.")
    modules: list[ModuleSpec] = Field(min_length=1, description="Modules, first to last.")
    hints: Literal["drop", "refuse"] = Field(
        default="drop", description="What protocol conversion does with hint fields the "
        "provider cannot use (cache keys, cache_control, metadata, context edits, server-side "
        "tools): drop leaves them out and names them in the x-vpipe-dropped response header; "
        "refuse answers 400 naming the field. Fields that change the answer are always refused.")


class RouteMatch(_Spec):
    """Which requests a Route takes. All given conditions must hold."""

    models: list[str] = Field(
        min_length=1,
        description="Model names: exact, globs (gpt-4*), or 're:<regex>' (full match).",
    )
    protocols: list[ClientProtocol] | None = Field(
        default=None, description="Client protocols; default: every protocol the pipeline serves."
    )
    path_prefix: str | None = Field(
        default=None,
        pattern=r"^/[A-Za-z0-9._~\-/]*[A-Za-z0-9._~\-]$",
        description="Front-door prefix, e.g. /team-a matches /team-a/v1/chat/completions.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Request headers that must be present with these values."
    )


class Stickiness(_Spec):
    """Which request property keeps a client on one version while the weight holds."""

    header: str | None = Field(
        default=None, min_length=1, max_length=256,
        description="Request header whose value is the key (e.g. x-user-id). Without it the key "
        "is the OpenAI `user` / Anthropic `metadata.user_id` field, else the conversation's "
        "first messages, so a multi-turn chat never flips versions mid-thread.",
    )


class AnalysisMetric(_Spec):
    """One check of an analysis: a PromQL value that must stay within [min, max]."""

    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)] = Field(
        description="The check's name. Without a query it names a built-in: "
        + "; ".join(f"{name}: {m.meaning}" for name, m in BUILTIN_METRICS.items()) + ".")
    query: str | None = Field(
        default=None, min_length=1, max_length=4096,
        description="PromQL returning one number; placeholders: "
        + "; ".join(f"${key}: {meaning}" for key, meaning in PLACEHOLDERS.items())
        + ". No data (e.g. no canary traffic yet) is inconclusive: neither a pass nor a failure.")
    min: float | None = Field(default=None, description="Fail when the value is below this.")
    max: float | None = Field(default=None, description="Fail when the value is above this.")

    @model_validator(mode="after")
    def _checkable(self) -> AnalysisMetric:
        if self.min is None and self.max is None:
            raise ValueError(f"metric '{self.name}' has no threshold: set min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"metric '{self.name}': min {self.min} is above max {self.max}")
        if self.query is None and self.name not in BUILTIN_METRICS:
            raise ValueError(f"metric '{self.name}' has no query and is not a built-in "
                             f"({', '.join(BUILTIN_METRICS)}); add a query or use a built-in name")
        unknown = unknown_placeholders(self.query) if self.query is not None else []
        if unknown:
            raise ValueError(f"metric '{self.name}': unknown placeholder(s) "
                             f"{', '.join(unknown)} in query; use "
                             + ", ".join(f"${key}" for key in PLACEHOLDERS))
        return self


class CanaryAnalysis(_Spec):
    """Checks run against Prometheus at every step of a rollout; a failure pauses or aborts."""

    prometheus: str | None = Field(
        default=None, pattern=r"^https?://[^\s]+$", max_length=2048,
        description="Prometheus base URL, e.g. http://prometheus.monitoring:9090; default: the "
        "operator's VPIPE_PROMETHEUS_URL.")
    interval: str = Field(
        default="1m", pattern=r"^[1-9][0-9]*(s|m|h)$",
        description="Time between checks, and the range ($window) the built-ins average over; "
        "make it at least twice Prometheus' scrape interval.")
    failure_limit: int = Field(
        default=2, ge=1, le=100,
        description="Consecutive failed checks that trigger onFailure (a query error counts "
        "as a failure).")
    on_failure: Literal["pause", "abort"] = Field(
        default="pause", description="pause: hold at the step (the canary keeps its share) "
        "until resume or abort. abort: weight 0 at once.")
    auto_promote: bool = Field(
        default=False, description="Advance on passing checks: step 0 once every sidecar "
        "loaded the canary, the next step after checksPerStep passing checks in a row, and "
        "Promoted (100%) after the last step. Without it only an explicit promote advances.")
    checks_per_step: int = Field(
        default=3, ge=1, le=1000,
        description="Passing checks in a row a step needs before autoPromote moves on.")
    metrics: list[AnalysisMetric] = Field(
        min_length=1, max_length=MAX_METRICS, description="The checks; every one must pass.")

    @property
    def interval_seconds(self) -> int:
        return duration_seconds(self.interval)

    @model_validator(mode="after")
    def _unique_names(self) -> CanaryAnalysis:
        names = [m.name for m in self.metrics]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"metric names must be unique; repeated: {', '.join(twice)}")
        return self


class Canary(_Spec):
    """A second pipeline (V2) that takes a share of the Route's traffic or a shadow copy."""

    pipeline: Name = Field(description="The canary (V2) Pipeline in the same namespace.")
    weight: int = Field(
        default=0, ge=0, le=100,
        description="Percent of matching traffic sent to the canary (split mode) or mirrored "
        "to it (shadow mode).",
    )
    mode: Literal["split", "shadow"] = Field(
        default="split",
        description="split: the canary answers its share. shadow: V1 answers every request and "
        "a copy goes to V2 in the background to be compared.",
    )
    stickiness: Stickiness | None = Field(
        default=None, description="What keeps a client on one version; see Stickiness."
    )
    steps: list[Annotated[int, Field(ge=1, le=100)]] | None = Field(
        default=None, min_length=1, max_length=MAX_STEPS,
        description="A stepped rollout plan: canary weights in percent, strictly ascending "
        "(e.g. [5, 25, 50, 100]). The canary starts at 0 and each advance is an explicit "
        "action (annotation vpipe.io/rollout=promote, or `vpipe rollout promote`); status."
        "activeWeight says what the proxies apply. Leave weight at 0 when steps are set.",
    )

    analysis: CanaryAnalysis | None = Field(
        default=None, description="Optional checks against Prometheus at every step; needs "
        "steps. A failed analysis pauses or aborts; it promotes only with autoPromote: true.",
    )

    @model_validator(mode="after")
    def _steps_plan(self) -> Canary:
        if self.analysis is not None and self.steps is None:
            raise ValueError("analysis needs steps: its checks run at each step and a failure "
                             "holds or aborts the rollout there; add steps, e.g. [5, 25, 50]")
        if self.steps is None:
            return self
        if any(a >= b for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(f"steps {self.steps} must be strictly ascending, e.g. [5, 25, 50, 100]")
        if self.weight != 0:
            raise ValueError(f"weight {self.weight} and steps are exclusive: with steps the "
                             "operator sets the weight one explicit promote at a time; remove "
                             "weight (or set it to 0), or remove steps")
        return self


class RouteSpec(_Spec):
    """Send matching requests through a pipeline, and optionally a share to a canary."""

    match: RouteMatch = Field(description="Which requests this Route takes.")
    priority: int = Field(
        default=0, ge=-1000000, le=1000000, description="Higher wins; ties must not overlap."
    )
    pipeline: Name = Field(description="Pipeline in the same namespace that serves the traffic.")
    canary: Canary | None = Field(
        default=None, description="Optional canary (V2) pipeline and its traffic share."
    )


class Pipeline(BaseModel):
    """A Pipeline custom resource."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)

    api_version: Literal["vpipe.io/v1alpha1"] = "vpipe.io/v1alpha1"
    kind: Literal["Pipeline"] = "Pipeline"
    metadata: ObjectMeta
    spec: PipelineSpec

    @property
    def ref(self) -> str:
        return f"Pipeline/{self.metadata.namespace}/{self.metadata.name}"


class Route(BaseModel):
    """A Route custom resource."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)

    api_version: Literal["vpipe.io/v1alpha1"] = "vpipe.io/v1alpha1"
    kind: Literal["Route"] = "Route"
    metadata: ObjectMeta
    spec: RouteSpec

    @property
    def ref(self) -> str:
        return f"Route/{self.metadata.namespace}/{self.metadata.name}"
