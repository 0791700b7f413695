"""Prerun validation of Pipeline and Route resources (`vpipe_api.validation`, `vpipe_api.loading`).

Covers every validation error class, each checked for the exact `Issue.resource` and
`Issue.field` and for a message that says what to do: missing pipelines, duplicate names,
module order, provider families (unknown family, baseUrl, credentials, unimplemented protocol),
inline secrets, bad model patterns, the protocol guard, ambiguous priority ties and their
non-ambiguous counterparts, namespaces, reporting every problem at once, and how `loading`
maps apiVersion/kind problems and pydantic field errors to dotted paths.
"""

from __future__ import annotations

from typing import Any

import pytest

from vpipe_api.errors import ConfigInvalid, Issue
from vpipe_api.families import FAMILIES
from vpipe_api.loading import parse_resources
from vpipe_api.resolve import resolve_provider
from vpipe_api.resources import (
    ModuleSpec,
    ObjectMeta,
    Pipeline,
    PipelineSpec,
    ProviderSpec,
    Route,
)
from vpipe_api.validation import ValidatedResources, validate

GV = "vpipe.io/v1alpha1"
MOCK: dict[str, Any] = {"family": "mock"}
CREDS: dict[str, Any] = {"secretRef": {"name": "upstream", "key": "api-key"}}


# --------------------------------------------------------------------------- helpers


def module(provider: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "provider", "provider": provider}
    if name is not None:
        out["name"] = name
    return out


def pipeline_manifest(
    name: str, *modules: dict[str, Any], namespace: str = "default"
) -> dict[str, Any]:
    return {
        "apiVersion": GV,
        "kind": "Pipeline",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"modules": list(modules) or [module(MOCK)]},
    }


def route_manifest(
    name: str,
    models: list[str],
    pipeline: str = "p",
    *,
    priority: int = 0,
    protocols: list[str] | None = None,
    path_prefix: str | None = None,
    headers: dict[str, str] | None = None,
    namespace: str = "default",
) -> dict[str, Any]:
    match: dict[str, Any] = {"models": models}
    if protocols is not None:
        match["protocols"] = protocols
    if path_prefix is not None:
        match["pathPrefix"] = path_prefix
    if headers is not None:
        match["headers"] = headers
    return {
        "apiVersion": GV,
        "kind": "Route",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"match": match, "priority": priority, "pipeline": pipeline},
    }


def pipe(name: str, *modules: dict[str, Any], namespace: str = "default") -> Pipeline:
    return Pipeline.model_validate(pipeline_manifest(name, *modules, namespace=namespace))


def route(name: str, models: list[str], pipeline: str = "p", **kw: Any) -> Route:
    return Route.model_validate(route_manifest(name, models, pipeline, **kw))


def issues_of(
    pipelines: list[Pipeline], routes: list[Route], namespace: str | None = None
) -> list[Issue]:
    with pytest.raises(ConfigInvalid) as info:
        validate(pipelines, routes, namespace=namespace)
    return list(info.value.issues)


def only_issue(
    pipelines: list[Pipeline], routes: list[Route], namespace: str | None = None
) -> Issue:
    found = issues_of(pipelines, routes, namespace)
    assert len(found) == 1, found
    return found[0]


def provider_issue(provider: dict[str, Any]) -> Issue:
    """The single issue a one-module pipeline `p` with this provider spec yields."""
    return only_issue([pipe("p", module(provider, name="up"))], [])


def parse_issues(*docs: dict[str, Any]) -> list[Issue]:
    with pytest.raises(ConfigInvalid) as info:
        parse_resources(list(docs))
    return list(info.value.issues)


def locations(issues: list[Issue]) -> set[tuple[str, str]]:
    return {(i.resource, i.field) for i in issues}


# --------------------------------------------------------------------------- the happy path


def test_valid_config_resolves_pipelines_and_routes() -> None:
    result = validate([pipe("p")], [route("r", ["gpt-*"])])
    assert isinstance(result, ValidatedResources)
    assert result.namespace == "default"
    assert list(result.pipelines) == ["p"]
    assert result.pipelines["p"].accepts == frozenset(
        {"anthropic-messages", "openai-chat", "openai-embeddings", "openai-responses"})
    assert [r.route.metadata.name for r in result.routes] == ["r"]


def test_empty_input_is_valid_for_default_namespace() -> None:
    result = validate([], [])
    assert result.namespace == "default"
    assert result.pipelines == {}
    assert result.routes == ()


# --------------------------------------------------------------------------- references and names


def test_route_to_missing_pipeline_lists_known_pipelines() -> None:
    issue = only_issue([pipe("alpha"), pipe("beta")], [route("r", ["m"], "gamma")])
    assert issue.resource == "Route/default/r"
    assert issue.field == "spec.pipeline"
    assert "Pipeline 'gamma' does not exist in namespace 'default'" in issue.message
    assert "known pipelines: alpha, beta" in issue.message
    assert "create it or fix the name" in issue.message


def test_route_to_missing_pipeline_when_none_exist() -> None:
    issue = only_issue([], [route("r", ["m"], "gamma")])
    assert (issue.resource, issue.field) == ("Route/default/r", "spec.pipeline")
    assert "none exist yet" in issue.message


def test_route_cannot_reach_pipeline_in_another_namespace() -> None:
    pipelines = [pipe("p", namespace="team-b")]
    routes = [route("r", ["m"], "p", namespace="team-a")]
    issue = only_issue(pipelines, routes, namespace="team-a")
    assert (issue.resource, issue.field) == ("Route/team-a/r", "spec.pipeline")
    assert "does not exist in namespace 'team-a'" in issue.message


def test_duplicate_pipeline_names() -> None:
    issue = only_issue([pipe("p"), pipe("p")], [route("r", ["m"], "p")])
    assert issue.resource == "Pipeline/default/p"
    assert issue.field == "metadata.name"
    assert "Pipeline 'p' is defined more than once" in issue.message
    assert "rename or remove one copy" in issue.message


def test_duplicate_route_names() -> None:
    # Different priorities, so the two copies cannot also tie with each other.
    issue = only_issue([pipe("p")], [route("r", ["a"], priority=1), route("r", ["b"], priority=2)])
    assert issue.resource == "Route/default/r"
    assert issue.field == "metadata.name"
    assert "Route 'r' is defined more than once" in issue.message
    assert "rename or remove one copy" in issue.message


def test_duplicate_route_names_report_only_the_duplicate() -> None:
    found = issues_of([pipe("p")], [route("r", ["a"]), route("r", ["b"])])
    assert [(i.resource, i.field) for i in found] == [("Route/default/r", "metadata.name")]


def test_duplicate_module_names_in_one_pipeline() -> None:
    found = issues_of([pipe("p", module(MOCK, "x"), module({"family": "ollama"}, "x"))], [])
    assert locations(found) == {
        ("Pipeline/default/p", "spec.modules[1].name"),
        ("Pipeline/default/p", "spec.modules[0]"),  # the first provider is not last
    }
    dup = next(i for i in found if i.field.endswith(".name"))
    assert "module name 'x' is used twice" in dup.message
    assert "give each module a distinct name" in dup.message


def test_unnamed_modules_default_to_their_type_and_collide() -> None:
    found = issues_of([pipe("p", module(MOCK), module({"family": "ollama"}))], [])
    dup = next(i for i in found if i.field == "spec.modules[1].name")
    assert "module name 'provider' is used twice" in dup.message


def test_provider_must_be_last() -> None:
    found = issues_of([pipe("p", module(MOCK, "a"), module({"family": "ollama"}, "b"))], [])
    assert len(found) == 1
    issue = found[0]
    assert (issue.resource, issue.field) == ("Pipeline/default/p", "spec.modules[0]")
    assert "a provider must be the last module" in issue.message
    assert "move it to the end or remove the extra provider" in issue.message


def test_last_module_must_be_a_provider() -> None:
    # The schema only knows `provider` today, so build a future module type without validation
    # to reach the prerun check behind it.
    interceptor = ModuleSpec.model_construct(name="auth", type="auth")
    pipeline = Pipeline(
        metadata=ObjectMeta(name="p"), spec=PipelineSpec.model_construct(modules=[interceptor])
    )
    issue = only_issue([pipeline], [])
    assert (issue.resource, issue.field) == ("Pipeline/default/p", "spec.modules[0]")
    assert "the last module must be a provider" in issue.message
    assert "add one" in issue.message


def test_non_provider_module_type_is_rejected_by_the_schema() -> None:
    doc = pipeline_manifest("p", {"type": "auth", "name": "auth"})
    found = parse_issues(doc)
    assert [(i.resource, i.field) for i in found] == [
        ("Pipeline/default/p (input#0)", "spec.modules[0].type")
    ]
    assert "'provider'" in found[0].message


# --------------------------------------------------------------------------- provider families


def test_unknown_family_lists_known_families() -> None:
    issue = provider_issue({"family": "gemini"})
    assert issue.resource == "Pipeline/default/p"
    assert issue.field == "spec.modules[0].provider.family"
    assert "unknown family 'gemini'" in issue.message
    assert "known families: " + ", ".join(sorted(FAMILIES)) in issue.message


def test_provider_without_family_or_base_url() -> None:
    issue = provider_issue({"credentials": CREDS})
    assert issue.field == "spec.modules[0].provider.family"
    assert "set a family" in issue.message
    assert "deepseek" in issue.message


@pytest.mark.parametrize(
    ("family", "extra"),
    [("azure-openai", {"credentials": CREDS}), ("vllm", {}), ("openai-compatible", {})],
)
def test_family_without_default_endpoint_needs_base_url(family: str, extra: dict[str, Any]) -> None:
    issue = provider_issue({"family": family, **extra})
    assert issue.resource == "Pipeline/default/p"
    assert issue.field == "spec.modules[0].provider.baseUrl"
    assert f"family '{family}' has no default endpoint; set baseUrl" in issue.message


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://files.example.com/v1", "is not an http(s) URL with a host"),
        ("https:///v1", "is not an http(s) URL with a host"),
        ("api.example.com/v1", "is not an http(s) URL with a host"),
        ("https://api.example.com/v1?api-version=1", "must not carry a query or fragment"),
        ("https://api.example.com/v1#top", "must not carry a query or fragment"),
        ("https://user:pass@api.example.com/v1", "credentials in the URL are not allowed"),
    ],
)
def test_bad_base_url(url: str, says: str) -> None:
    issue = provider_issue({"family": "vllm", "baseUrl": url})
    assert (issue.resource, issue.field) == (
        "Pipeline/default/p",
        "spec.modules[0].provider.baseUrl",
    )
    assert says in issue.message
    assert "user:pass" not in issue.message  # never echo credentials back


def test_base_url_with_broken_ipv6_host_is_an_issue() -> None:
    issue = provider_issue({"family": "vllm", "baseUrl": "http://[::1/v1"})
    assert issue.field == "spec.modules[0].provider.baseUrl"


@pytest.mark.parametrize(
    "url", ["https://api.example.com:99999/v1", "https://api.example.com:x/v1"]
)
def test_base_url_with_bad_port_is_an_issue(url: str) -> None:
    spec = ProviderSpec(family="vllm", base_url=url)
    config, found = resolve_provider(spec, "Pipeline/default/p", "spec.modules[0].provider")
    assert [i.field for i in found] == ["spec.modules[0].provider.baseUrl"]
    assert config is None


def test_base_url_is_accepted_for_ipv6_and_ports() -> None:
    result = validate(
        [pipe("p", module({"family": "vllm", "baseUrl": "http://[::1]:8000/v1/"}))], []
    )
    assert result.pipelines["p"].modules[0].config["baseUrl"] == "http://[::1]:8000/v1"


def test_in_process_family_rejects_base_url() -> None:
    issue = provider_issue({"family": "mock", "baseUrl": "http://localhost:1/v1"})
    assert issue.field == "spec.modules[0].provider.baseUrl"
    assert "answered inside the proxy; remove baseUrl" in issue.message


@pytest.mark.parametrize("family", ["deepseek", "openai", "anthropic", "azure-openai"])
def test_missing_required_credentials(family: str) -> None:
    extra = {"baseUrl": "https://r.openai.azure.com/openai/v1"} if family == "azure-openai" else {}
    found = issues_of([pipe("p", module({"family": family, **extra}))], [])
    creds = [i for i in found if i.field == "spec.modules[0].provider.credentials"]
    assert len(creds) == 1, found
    assert creds[0].resource == "Pipeline/default/p"
    assert f"family '{family}' needs an API key" in creds[0].message
    assert "credentials.secretRef" in creds[0].message


@pytest.mark.parametrize("family", ["mock", "ollama", "lmstudio"])
def test_credentials_given_to_family_that_takes_none(family: str) -> None:
    issue = provider_issue({"family": family, "credentials": CREDS})
    assert (issue.resource, issue.field) == (
        "Pipeline/default/p",
        "spec.modules[0].provider.credentials",
    )
    assert f"family '{family}' takes no credentials; remove them" in issue.message


def test_optional_credentials_are_fine_either_way() -> None:
    base = {"family": "vllm", "baseUrl": "http://vllm:8000/v1"}
    result = validate(
        [pipe("with", module({**base, "credentials": CREDS})), pipe("without", module(base))], []
    )
    assert result.pipelines["with"].modules[0].config["auth"] == "bearer"
    assert result.pipelines["without"].modules[0].config["auth"] == "none"


def test_every_provider_protocol_is_callable() -> None:
    for protocol in ("openai-chat", "openai-responses", "anthropic-messages"):
        spec = {"family": "openai", "protocol": protocol, "credentials": CREDS}
        result = validate([pipe("p", module(spec))], [])
        assert result.pipelines["p"].modules[0].config["protocol"] == protocol


def test_explicit_protocol_overrides_family() -> None:
    result = validate([pipe("p", module({"family": "openai", "protocol": "openai-responses",
                                         "credentials": CREDS}))], [])
    assert result.pipelines["p"].accepts == frozenset(
        {"openai-responses", "openai-chat", "anthropic-messages"})


def test_provider_issues_of_one_module_are_all_reported() -> None:
    found = issues_of([pipe("p", module({"family": "anthropic", "baseUrl": "ftp://x"}))], [])
    assert {i.field for i in found} == {
        "spec.modules[0].provider.baseUrl",
        "spec.modules[0].provider.credentials",
    }


# --------------------------------------------------------------------------- inline secrets


@pytest.mark.parametrize("key", ["apiKey", "api_key", "token", "password", "key"])
def test_inline_secret_field_rejected(key: str) -> None:
    doc = pipeline_manifest("p", module({"family": "deepseek", key: "sk-live-123"}))
    found = parse_issues(doc)
    assert len(found) == 1
    issue = found[0]
    assert issue.resource == "Pipeline/default/p (input#0)"
    assert issue.field == "spec.modules[0].provider"
    assert f"inline secret field '{key}' is not allowed" in issue.message
    assert "credentials.secretRef" in issue.message
    assert "sk-live-123" not in issue.message


@pytest.mark.parametrize("header", ["Authorization", "api-key", "X-Api-Key", "Proxy-Authorization"])
def test_credential_header_rejected(header: str) -> None:
    doc = pipeline_manifest(
        "p", module({"family": "deepseek", "credentials": CREDS, "headers": {header: "Bearer x"}})
    )
    found = parse_issues(doc)
    assert len(found) == 1
    issue = found[0]
    assert issue.resource == "Pipeline/default/p (input#0)"
    assert issue.field == "spec.modules[0].provider"
    assert f"header '{header}' would put a credential in the config" in issue.message
    assert "use credentials.secretRef" in issue.message


def test_harmless_extra_header_is_accepted() -> None:
    doc = pipeline_manifest("p", module({"family": "mock", "headers": {"X-Team": "a"}}))
    assert len(parse_resources([doc]).pipelines) == 1


# --------------------------------------------------------------------------- model patterns


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("gpt-[4", "has an unclosed '[' character class"),
        ("re:(", "is not a valid regular expression"),
        ("re:", "has no regular expression after the prefix"),
        ("", "is empty or has surrounding spaces"),
        (" gpt-4", "is empty or has surrounding spaces"),
    ],
)
def test_bad_model_pattern(pattern: str, says: str) -> None:
    issue = only_issue([pipe("p")], [route("r", ["ok-*", pattern])])
    assert (issue.resource, issue.field) == ("Route/default/r", "spec.match.models[1]")
    assert says in issue.message


def test_every_bad_pattern_of_a_route_is_reported() -> None:
    found = issues_of([pipe("p")], [route("r", ["re:(", "ok", "a[b"])])
    assert [i.field for i in found] == ["spec.match.models[0]", "spec.match.models[2]"]


# --------------------------------------------------------------------------- protocol guard


def test_protocol_guard_names_pipeline_and_module() -> None:
    anthropic = {"family": "anthropic", "credentials": CREDS}
    routes = [route("r", ["m"], protocols=["anthropic-messages", "openai-embeddings"])]
    issue = only_issue([pipe("p", module(anthropic, "claude"))], routes)
    assert issue.resource == "Route/default/r"
    assert issue.field == "spec.match.protocols[1]"
    assert "client protocol 'openai-embeddings' cannot flow through Pipeline 'p'" in issue.message
    assert "module 'claude' (protocol anthropic-messages)" in issue.message
    assert "accepts only anthropic-messages, openai-chat, openai-responses" in issue.message
    assert "remove 'openai-embeddings' here" in issue.message


def test_protocol_guard_accepts_served_protocols() -> None:
    result = validate([pipe("p")], [route("r", ["m"], protocols=["openai-embeddings"])])
    assert result.routes[0].protocols == ("openai-embeddings",)


def test_route_protocols_default_to_what_the_pipeline_accepts() -> None:
    result = validate([pipe("p")], [route("r", ["m"])])
    assert result.routes[0].protocols == (
        "anthropic-messages", "openai-chat", "openai-embeddings", "openai-responses")


def test_unknown_client_protocol_is_a_schema_error() -> None:
    found = parse_issues(route_manifest("r", ["m"], protocols=["grpc"]))
    assert [(i.resource, i.field) for i in found] == [
        ("Route/default/r (input#0)", "spec.match.protocols[0]")
    ]


# --------------------------------------------------------------------------- priority ties


def tie(a: dict[str, Any], b: dict[str, Any]) -> Issue:
    """The single tie issue between routes `a` and `b` (both on pipeline p)."""
    issue = only_issue([pipe("p")], [route("a", **a), route("b", **b)])
    assert issue.resource == "Route/default/b"
    assert issue.field == "spec.priority"
    assert "ties with Route 'a' at priority" in issue.message
    assert "give one a higher priority or make their matches disjoint" in issue.message
    return issue


def test_tie_exact_vs_exact_same_name() -> None:
    issue = tie({"models": ["gpt-4"], "priority": 5}, {"models": ["gpt-4"], "priority": 5})
    assert "at priority 5 and both can match model 'gpt-4'" in issue.message


def test_tie_glob_vs_exact() -> None:
    issue = tie({"models": ["gpt-*"]}, {"models": ["gpt-4o"]})
    assert "model 'gpt-4o'" in issue.message


def test_tie_exact_vs_glob_reports_on_the_exact_route() -> None:
    issue = only_issue([pipe("p")], [route("b", ["gpt-4o"]), route("a", ["gpt-*"])])
    assert (issue.resource, issue.field) == ("Route/default/b", "spec.priority")
    assert "ties with Route 'a'" in issue.message


def test_tie_glob_vs_glob_with_shared_prefix() -> None:
    issue = tie({"models": ["gpt-*"]}, {"models": ["gpt-4*"]})
    assert "'gpt-* / gpt-4*'" in issue.message


@pytest.mark.parametrize("other", ["claude-*", "re:claude-.*", "llama?"])
def test_tie_regex_vs_anything_fuzzy(other: str) -> None:
    issue = tie({"models": ["re:gpt-.*"]}, {"models": [other]})
    assert "re:gpt-.*" in issue.message


def test_tie_regex_vs_matching_exact() -> None:
    issue = tie({"models": ["re:gpt-.*"]}, {"models": ["gpt-4"]})
    assert "model 'gpt-4'" in issue.message


def test_tie_when_one_route_has_no_condition_the_other_has() -> None:
    tie(
        {"models": ["m"], "headers": {"x-tenant": "gold"}, "path_prefix": "/team-a"},
        {"models": ["m"]},
    )


def test_tie_with_same_headers_in_different_case() -> None:
    tie(
        {"models": ["m"], "headers": {"X-Tenant": "gold"}},
        {"models": ["m"], "headers": {"x-tenant": "gold"}},
    )


def test_tie_with_nested_path_prefixes() -> None:
    tie(
        {"models": ["m"], "path_prefix": "/team-a"}, {"models": ["m"], "path_prefix": "/team-a/sub"}
    )


def test_one_tie_issue_per_route_pair() -> None:
    issue = tie({"models": ["x", "y", "z-*"]}, {"models": ["x", "y", "z-1"]})
    assert "model 'x'" in issue.message


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(
            {"models": ["m"], "priority": 1}, {"models": ["m"], "priority": 2}, id="priorities"
        ),
        pytest.param(
            {"models": ["m"], "protocols": ["openai-chat"]},
            {"models": ["m"], "protocols": ["openai-embeddings"]},
            id="protocols",
        ),
        pytest.param(
            {"models": ["m"], "path_prefix": "/team-a"},
            {"models": ["m"], "path_prefix": "/team-b"},
            id="path-prefixes",
        ),
        pytest.param(
            {"models": ["m"], "headers": {"x-tenant": "gold"}},
            {"models": ["m"], "headers": {"X-Tenant": "silver"}},
            id="header-values",
        ),
        pytest.param({"models": ["gpt-*"]}, {"models": ["claude-*"]}, id="disjoint-globs"),
        pytest.param({"models": ["gpt-4*"]}, {"models": ["gpt-5*"]}, id="disjoint-glob-prefixes"),
        pytest.param({"models": ["gpt-4"]}, {"models": ["gpt-4o"]}, id="different-exact"),
        pytest.param({"models": ["re:gpt-.*"]}, {"models": ["claude"]}, id="regex-vs-other-exact"),
        pytest.param({"models": ["o[0-9]*"]}, {"models": ["deepseek-*"]}, id="class-glob"),
    ],
)
def test_not_ambiguous(a: dict[str, Any], b: dict[str, Any]) -> None:
    result = validate([pipe("p")], [route("a", **a), route("b", **b)])
    assert [r.route.metadata.name for r in result.routes] == ["a", "b"]


def test_same_route_patterns_never_tie_with_themselves() -> None:
    result = validate([pipe("p")], [route("a", ["gpt-4", "gpt-*", "re:gpt.*", "gpt-4"])])
    assert len(result.routes) == 1


def test_sibling_path_prefixes_are_not_ambiguous() -> None:
    routes = [route("a", ["m"], path_prefix="/team-a"), route("b", ["m"], path_prefix="/team-ab")]
    assert len(validate([pipe("p")], routes).routes) == 2


# --------------------------------------------------------------------------- namespaces


def test_resources_spanning_namespaces_need_a_namespace() -> None:
    issue = only_issue([pipe("p", namespace="team-a")], [route("r", ["m"], namespace="team-b")])
    assert issue.resource == "resources"
    assert issue.field == "metadata.namespace"
    assert "['team-a', 'team-b']" in issue.message
    assert "pick one" in issue.message


def test_namespace_argument_selects_one_namespace() -> None:
    pipelines = [
        pipe("p", namespace="team-a"),
        pipe("p", module({"family": "nope"}), namespace="team-b"),
    ]
    routes = [route("r", ["m"], namespace="team-a"), route("broken", ["re:("], namespace="team-b")]
    result = validate(pipelines, routes, namespace="team-a")
    assert result.namespace == "team-a"
    assert list(result.pipelines) == ["p"]
    assert [r.route.ref for r in result.routes] == ["Route/team-a/r"]


def test_single_namespace_is_inferred() -> None:
    result = validate([pipe("p", namespace="team-a")], [route("r", ["m"], namespace="team-a")])
    assert result.namespace == "team-a"


# --------------------------------------------------------------------------- all at once


def test_all_problems_are_reported_in_one_error() -> None:
    pipelines = [
        pipe("ok"),
        pipe("bad-family", module({"family": "gemini"})),
        pipe("no-key", module({"family": "deepseek"})),
    ]
    routes = [
        route("orphan", ["x"], "missing"),
        route("bad-glob", ["gpt-[4"], "ok"),
        route("tie-a", ["same"], "ok"),
        route("tie-b", ["same"], "ok"),
    ]
    with pytest.raises(ConfigInvalid) as info:
        validate(pipelines, routes)
    assert locations(list(info.value.issues)) == {
        ("Pipeline/default/bad-family", "spec.modules[0].provider.family"),
        ("Pipeline/default/no-key", "spec.modules[0].provider.credentials"),
        ("Route/default/orphan", "spec.pipeline"),
        ("Route/default/bad-glob", "spec.match.models[0]"),
        ("Route/default/tie-b", "spec.priority"),
    }
    assert len(info.value.issues) == 5
    text = str(info.value)
    assert text.startswith("5 problems in the vpipe resources:")
    assert "  - Route/default/orphan spec.pipeline: Pipeline 'missing' does not exist" in text


def test_single_problem_message_is_singular() -> None:
    with pytest.raises(ConfigInvalid, match=r"^1 problem in the vpipe resources:\n  - "):
        validate([], [route("r", ["m"], "missing")])


# --------------------------------------------------------------------------- loading: kinds


def test_unknown_kind_in_vpipe_group() -> None:
    found = parse_issues({"apiVersion": GV, "kind": "Gateway", "metadata": {"name": "g"}})
    assert found == [
        Issue("input#0", "kind", "unknown kind 'Gateway'; vpipe.io has Pipeline and Route")
    ]


def test_wrong_api_version_in_vpipe_group() -> None:
    doc = pipeline_manifest("p")
    doc["apiVersion"] = "vpipe.io/v1"
    found = parse_issues(doc)
    assert len(found) == 1
    assert (found[0].resource, found[0].field) == ("input#0", "apiVersion")
    assert "'vpipe.io/v1' is not served; use vpipe.io/v1alpha1" in found[0].message


def test_foreign_documents_are_skipped() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2},
    }
    lookalike = {"apiVersion": "vpipe.io.example.com/v1", "kind": "Pipeline"}
    parsed = parse_resources(
        [deployment, lookalike, pipeline_manifest("p"), route_manifest("r", ["m"])]
    )
    assert [p.metadata.name for p in parsed.pipelines] == ["p"]
    assert [r.metadata.name for r in parsed.routes] == ["r"]


def test_non_mapping_document_is_an_issue() -> None:
    with pytest.raises(ConfigInvalid) as info:
        parse_resources([["not", "a", "mapping"]], origin="stdin")  # type: ignore[list-item]
    assert info.value.issues == (
        Issue("stdin#0", "", "expected a mapping with apiVersion and kind"),
    )


def test_loading_reports_problems_of_every_document() -> None:
    bad_kind = {"apiVersion": GV, "kind": "Gateway"}
    bad_version = {**pipeline_manifest("q"), "apiVersion": "vpipe.io/v2"}
    found = parse_issues(pipeline_manifest("p"), bad_kind, bad_version)
    assert locations(found) == {("input#1", "kind"), ("input#2", "apiVersion")}


# --------------------------------------------------------------------------- loading: field paths


def test_field_error_path_for_empty_models() -> None:
    found = parse_issues(route_manifest("r", []))
    assert len(found) == 1
    assert found[0].resource == "Route/default/r (input#0)"
    assert found[0].field == "spec.match.models"
    assert "at least 1 item" in found[0].message


def test_field_error_path_for_max_connections() -> None:
    doc = pipeline_manifest("p", module({"family": "mock", "maxConnections": 0}))
    found = parse_issues(doc)
    assert [(i.resource, i.field) for i in found] == [
        ("Pipeline/default/p (input#0)", "spec.modules[0].provider.maxConnections")
    ]
    assert "greater than or equal to 1" in found[0].message


def test_field_error_path_for_nested_timeouts_and_secret_ref() -> None:
    doc = pipeline_manifest(
        "p",
        module(
            {
                "family": "openai",
                "timeouts": {"firstByte": -1},
                "credentials": {"secretRef": {"name": "Bad_Name"}},
            }
        ),
    )
    found = parse_issues(doc)
    assert {i.field for i in found} == {
        "spec.modules[0].provider.timeouts.firstByte",
        "spec.modules[0].provider.credentials.secretRef.name",
    }


def test_unknown_field_says_so() -> None:
    doc = route_manifest("r", ["m"])
    doc["spec"]["match"]["model"] = "typo"
    found = parse_issues(doc)
    assert [(i.resource, i.field) for i in found] == [
        ("Route/default/r (input#0)", "spec.match.model")
    ]
    assert found[0].message.startswith("unknown field;")


def test_missing_fields_are_named() -> None:
    found = parse_issues({"apiVersion": GV, "kind": "Route", "spec": {"match": {"models": ["m"]}}})
    assert locations(found) == {
        ("Route/default/? (input#0)", "metadata"),
        ("Route/default/? (input#0)", "spec.pipeline"),
    }
    assert all(i.message == "required field is missing" for i in found)


def test_invalid_metadata_name_and_path_prefix() -> None:
    doc = route_manifest("Bad_Name", ["m"], path_prefix="no-slash", namespace="team-a")
    found = parse_issues(doc)
    assert locations(found) == {
        ("Route/team-a/Bad_Name (input#0)", "metadata.name"),
        ("Route/team-a/Bad_Name (input#0)", "spec.match.pathPrefix"),
    }


def test_module_type_without_its_member() -> None:
    found = parse_issues(pipeline_manifest("p", {"type": "provider"}))
    assert [(i.resource, i.field) for i in found] == [
        ("Pipeline/default/p (input#0)", "spec.modules[0]")
    ]
    assert found[0].message == "type is 'provider' but the 'provider' member is missing"


def test_issue_text_names_resource_and_field() -> None:
    assert str(Issue("Route/default/r", "spec.pipeline", "fix it")) == (
        "Route/default/r spec.pipeline: fix it"
    )
    assert str(Issue("/tmp/x.yaml", "", "cannot be read")) == "/tmp/x.yaml: cannot be read"
