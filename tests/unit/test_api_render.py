"""The pure renderer (`vpipe_api.render`): Pipelines + Routes -> config document / ConfigMap.

Covers determinism (input order never changes the bytes or the revision), static-instance
sharing by normalized provider config (module names and spelled-out defaults do not matter,
any real difference does), family defaults and explicit overrides, header-name lower-casing,
route ordering and protocol defaults, namespace selection, revision sensitivity to every kind
of content change, the ConfigMap manifest, and that secrets only ever appear as references.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from vpipe_api.document import (
    CONFIG_VERSION,
    CONFIGMAP_KEY,
    CONFIGMAP_NAME,
    REVISION_ANNOTATION,
    ConfigDocument,
    parse_document,
)
from vpipe_api.errors import ConfigInvalid
from vpipe_api.render import render, render_configmap
from vpipe_api.resources import INLINE_SECRET_FIELDS, SECRET_HEADERS, Pipeline, Route

GV = "vpipe.io/v1alpha1"
DEEPSEEK_KEY: dict[str, Any] = {"secretRef": {"name": "deepseek", "key": "api-key"}}


def pipe(
    name: str, provider: dict[str, Any], module_name: str | None = None, namespace: str = "default"
) -> Pipeline:
    mod: dict[str, Any] = {"type": "provider", "provider": provider}
    if module_name is not None:
        mod["name"] = module_name
    return Pipeline.model_validate(
        {
            "apiVersion": GV,
            "kind": "Pipeline",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"modules": [mod]},
        }
    )


def route(name: str, models: list[str], pipeline: str, priority: int = 0, **match: Any) -> Route:
    return Route.model_validate(
        {
            "apiVersion": GV,
            "kind": "Route",
            "metadata": {"name": name, "namespace": match.pop("namespace", "default")},
            "spec": {
                "match": {"models": models, **match},
                "priority": priority,
                "pipeline": pipeline,
            },
        }
    )


def sample() -> tuple[list[Pipeline], list[Route]]:
    pipelines = [
        pipe("mock-v1", {"family": "mock"}, "mock"),
        pipe("mock-v2", {"family": "mock", "modelMap": {"gpt-4o": "mock-large"}}, "mock"),
        pipe("deepseek-v1", {"family": "deepseek", "credentials": DEEPSEEK_KEY}, "deepseek"),
        pipe("local", {"family": "ollama", "headers": {"X-Team": "a"}}),
    ]
    routes = [
        route("mini", ["gpt-4o-mini"], "mock-v2", 200),
        route("gpts", ["gpt-*"], "mock-v1", 100),
        route("deepseek", ["deepseek-*"], "deepseek-v1", 100),
        route("llamas", ["llama*"], "local", 0, headers={"X-Tenant": "gold"}, pathPrefix="/team-a"),
        route("embed", ["re:text-embedding-.*"], "mock-v1", -5, protocols=["openai-embeddings"]),
    ]
    return pipelines, routes


def single_instance(document: ConfigDocument) -> dict[str, Any]:
    assert len(document.instances) == 1
    return next(iter(document.instances.values())).config


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in a nested JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


# --------------------------------------------------------------------------- determinism


def test_rendering_is_deterministic_whatever_the_input_order() -> None:
    pipelines, routes = sample()
    reference = render(pipelines, routes)
    shuffler = random.Random(1234)
    for _ in range(5):
        ps, rs = pipelines[:], routes[:]
        shuffler.shuffle(ps)
        shuffler.shuffle(rs)
        again = render(ps, rs)
        assert again.to_json() == reference.to_json()
        assert again.revision == reference.revision
    reversed_doc = render(pipelines[::-1], routes[::-1])
    assert reversed_doc.to_json() == reference.to_json()


def test_render_is_repeatable_and_revision_is_a_content_hash() -> None:
    pipelines, routes = sample()
    first, second = render(pipelines, routes), render(pipelines, routes)
    assert first == second
    assert len(first.revision) == 16
    assert int(first.revision, 16) >= 0
    assert first.revision == first.content_revision()
    assert first.config_version == CONFIG_VERSION


# --------------------------------------------------------------------------- instances


def test_identical_provider_specs_share_one_instance() -> None:
    doc = render(
        [pipe("a", {"family": "mock"}), pipe("b", {"family": "mock"})],
        [route("ra", ["a"], "a"), route("rb", ["b"], "b")],
    )
    assert len(doc.instances) == 1
    key = next(iter(doc.instances))
    assert key.startswith("provider-")
    assert doc.pipelines["a"].modules[0].instance == key
    assert doc.pipelines["b"].modules[0].instance == key


def test_different_provider_specs_get_different_instances() -> None:
    doc = render(
        [
            pipe("a", {"family": "mock"}),
            pipe("b", {"family": "mock", "maxConnections": 7}),
            pipe("c", {"family": "mock", "modelMap": {"x": "y"}}),
        ],
        [],
    )
    keys = [doc.pipelines[name].modules[0].instance for name in ("a", "b", "c")]
    assert len(set(keys)) == 3
    assert sorted(doc.instances) == sorted(keys)


def test_module_names_do_not_change_the_instance_key() -> None:
    doc = render(
        [pipe("a", {"family": "mock"}, "first"), pipe("b", {"family": "mock"}, "second")], []
    )
    a, b = doc.pipelines["a"].modules[0], doc.pipelines["b"].modules[0]
    assert (a.name, b.name) == ("first", "second")
    assert a.instance == b.instance
    assert len(doc.instances) == 1


def test_spelled_out_defaults_share_the_instance_of_the_short_form() -> None:
    short = {"family": "deepseek", "credentials": DEEPSEEK_KEY}
    long = {
        "family": "deepseek",
        "protocol": "openai-chat",
        "baseUrl": "https://api.deepseek.com/v1/",
        "credentials": {"secretRef": {"name": "deepseek"}},  # key defaults to api-key
        "timeouts": {"connect": 10, "firstByte": 120, "total": 600},
        "maxConnections": 100,
        "headers": {},
    }
    doc = render([pipe("short", short), pipe("long", long)], [])
    assert len(doc.instances) == 1


def test_header_case_does_not_split_instances() -> None:
    doc = render(
        [
            pipe("a", {"family": "mock", "headers": {"X-Team": "a"}}),
            pipe("b", {"family": "mock", "headers": {"x-team": "a"}}),
        ],
        [],
    )
    assert len(doc.instances) == 1
    assert single_instance(doc)["headers"] == {"x-team": "a"}


def test_instances_are_sorted_by_key() -> None:
    pipelines, routes = sample()
    doc = render(pipelines, routes)
    assert list(doc.instances) == sorted(doc.instances)


# --------------------------------------------------------------------------- family defaults


def test_family_defaults_are_resolved() -> None:
    doc = render([pipe("p", {"family": "deepseek", "credentials": DEEPSEEK_KEY})], [])
    assert single_instance(doc) == {
        "family": "deepseek",
        "protocol": "openai-chat",
        "baseUrl": "https://api.deepseek.com/v1",
        "auth": "bearer",
        "credentials": {"name": "deepseek", "key": "api-key"},
        "headers": {},
        "modelMap": {},
        "timeouts": {"connect": 10.0, "firstByte": 120.0, "total": 600.0},
        "maxConnections": 100,
    }


def test_explicit_fields_override_family_defaults() -> None:
    provider = {
        "family": "deepseek",
        "baseUrl": "https://gateway.example.com/deepseek/v1/",
        "credentials": {"secretRef": {"name": "ds", "key": "token"}},
        "timeouts": {"firstByte": 30},
        "maxConnections": 8,
        "modelMap": {"chat": "deepseek-chat"},
    }
    config = single_instance(render([pipe("p", provider)], []))
    assert config["baseUrl"] == "https://gateway.example.com/deepseek/v1"  # trailing '/' dropped
    assert config["credentials"] == {"name": "ds", "key": "token"}
    assert config["timeouts"] == {"connect": 10.0, "firstByte": 30.0, "total": 600.0}
    assert config["maxConnections"] == 8
    assert config["modelMap"] == {"chat": "deepseek-chat"}
    assert config["auth"] == "bearer"


def test_family_headers_merge_with_explicit_headers() -> None:
    provider = {"family": "anthropic", "protocol": "openai-chat", "credentials": DEEPSEEK_KEY,
                "headers": {"Anthropic-Beta": "tools"}}  # fmt: skip
    config = single_instance(render([pipe("p", provider)], []))
    assert config["headers"] == {"anthropic-version": "2023-06-01", "anthropic-beta": "tools"}
    assert config["auth"] == "x-api-key"


def test_base_url_alone_means_openai_compatible() -> None:
    config = single_instance(render([pipe("p", {"baseUrl": "http://llm.internal:8000/v1"})], []))
    assert config["family"] == "openai-compatible"
    assert config["protocol"] == "openai-chat"
    assert config["auth"] == "none"
    assert config["credentials"] is None


def test_mock_has_no_base_url_and_no_auth() -> None:
    config = single_instance(render([pipe("p", {"family": "mock"})], []))
    assert config["baseUrl"] is None
    assert config["auth"] == "none"


def test_pipeline_doc_lists_modules_and_accepts() -> None:
    doc = render([pipe("p", {"family": "mock"}, "answer")], [])
    pipeline = doc.pipelines["p"]
    assert [(m.name, m.type) for m in pipeline.modules] == [("answer", "provider")]
    assert pipeline.accepts == ["anthropic-messages", "openai-chat", "openai-embeddings", "openai-responses"]
    assert render([pipe("p", {"family": "mock"})], []).pipelines["p"].modules[0].name == "provider"


# --------------------------------------------------------------------------- routes


def test_routes_ordered_by_priority_desc_then_name() -> None:
    pipelines, routes = sample()
    doc = render(pipelines, routes)
    assert [(r.priority, r.name) for r in doc.routes] == [
        (200, "mini"),
        (100, "deepseek"),
        (100, "gpts"),
        (0, "llamas"),
        (-5, "embed"),
    ]


def test_route_protocols_default_to_pipeline_accepts() -> None:
    pipelines, routes = sample()
    by_name = {r.name: r for r in render(pipelines, routes).routes}
    assert by_name["gpts"].protocols == [
        "anthropic-messages", "openai-chat", "openai-embeddings", "openai-responses"]
    assert by_name["embed"].protocols == ["openai-embeddings"]


def test_route_header_names_lower_cased_and_fields_carried() -> None:
    pipelines, routes = sample()
    llamas = next(r for r in render(pipelines, routes).routes if r.name == "llamas")
    assert llamas.headers == {"x-tenant": "gold"}
    assert llamas.path_prefix == "/team-a"
    assert llamas.pipeline == "local"
    assert llamas.models == ["llama*"]


def test_duplicate_route_protocols_are_collapsed() -> None:
    doc = render(
        [pipe("p", {"family": "mock"})],
        [route("r", ["m"], "p", protocols=["openai-chat", "openai-chat"])],
    )
    assert doc.routes[0].protocols == ["openai-chat"]


# --------------------------------------------------------------------------- namespaces


def test_render_one_namespace_of_several() -> None:
    pipelines = [
        pipe("p", {"family": "mock"}, namespace="a"),
        pipe("q", {"family": "mock"}, namespace="b"),
    ]
    routes = [route("r", ["m"], "p", namespace="a"), route("s", ["m"], "q", namespace="b")]
    doc = render(pipelines, routes, namespace="b")
    assert doc.namespace == "b"
    assert list(doc.pipelines) == ["q"]
    assert [r.name for r in doc.routes] == ["s"]
    with pytest.raises(ConfigInvalid, match="span namespaces"):
        render(pipelines, routes)


def test_render_raises_config_invalid_instead_of_rendering() -> None:
    with pytest.raises(ConfigInvalid) as info:
        render([pipe("p", {"family": "mock"})], [route("r", ["m"], "nope")])
    assert [(i.resource, i.field) for i in info.value.issues] == [
        ("Route/default/r", "spec.pipeline")
    ]


def test_namespace_in_document_and_empty_render() -> None:
    doc = render([pipe("p", {"family": "mock"}, namespace="team-a")], [])
    assert doc.namespace == "team-a"
    empty = render([], [])
    assert (empty.namespace, empty.instances, empty.pipelines, empty.routes) == (
        "default",
        {},
        {},
        [],
    )


# --------------------------------------------------------------------------- revision


Mutation = Callable[[list[Pipeline], list[Route]], None]


def _replace_route(routes: list[Route], name: str, new: Route) -> None:
    routes[[r.metadata.name for r in routes].index(name)] = new


def _gpts(
    models: tuple[str, ...] = ("gpt-*",),
    pipeline: str = "mock-v1",
    priority: int = 100,
    **match: Any,
) -> Route:
    return route("gpts", list(models), pipeline, priority, **match)


MUTATIONS: dict[str, Mutation] = {
    "route priority": lambda ps, rs: _replace_route(rs, "gpts", _gpts(priority=101)),
    "route model": lambda ps, rs: _replace_route(rs, "gpts", _gpts(models=("gpt-5*",))),
    "route pipeline": lambda ps, rs: _replace_route(rs, "gpts", _gpts(pipeline="mock-v2")),
    "route header value": lambda ps, rs: _replace_route(
        rs, "llamas", route("llamas", ["llama*"], "local", 0, headers={"X-Tenant": "silver"},
                            pathPrefix="/team-a")),
    "route path prefix": lambda ps, rs: _replace_route(
        rs, "llamas", route("llamas", ["llama*"], "local", 0, headers={"X-Tenant": "gold"},
                            pathPrefix="/team-b")),
    "route protocols": lambda ps, rs: _replace_route(
        rs, "gpts", _gpts(protocols=["openai-chat"])),
    "route added": lambda ps, rs: rs.append(route("extra", ["extra"], "mock-v1", 7)),
    "route removed": lambda ps, rs: rs.pop(),
    "model map": lambda ps, rs: ps.__setitem__(
        1, pipe("mock-v2", {"family": "mock", "modelMap": {"gpt-4o": "mock-xl"}}, "mock")),
    "module name": lambda ps, rs: ps.__setitem__(0, pipe("mock-v1", {"family": "mock"}, "renamed")),
    "timeouts": lambda ps, rs: ps.__setitem__(
        2, pipe("deepseek-v1", {"family": "deepseek", "credentials": DEEPSEEK_KEY,
                                "timeouts": {"total": 30}}, "deepseek")),
    "secret key name": lambda ps, rs: ps.__setitem__(
        2, pipe("deepseek-v1", {"family": "deepseek",
                                "credentials": {"secretRef": {"name": "deepseek", "key": "k2"}}},
                "deepseek")),
    "provider header": lambda ps, rs: ps.__setitem__(
        3, pipe("local", {"family": "ollama", "headers": {"X-Team": "b"}})),
    "pipeline added": lambda ps, rs: ps.append(pipe("spare", {"family": "mock"})),
}  # fmt: skip


@pytest.mark.parametrize("change", sorted(MUTATIONS))
def test_revision_changes_with_any_content_change(change: str) -> None:
    pipelines, routes = sample()
    before = render(pipelines, routes)
    MUTATIONS[change](pipelines, routes)
    after = render(pipelines, routes)
    assert after.to_json() != before.to_json()
    assert after.revision != before.revision


def test_revision_ignores_what_is_not_content() -> None:
    pipelines, routes = sample()
    before = render(pipelines, routes)
    # Descriptions and metadata other than name/namespace are not part of the document.
    described = Pipeline.model_validate(
        {
            "apiVersion": GV,
            "kind": "Pipeline",
            "metadata": {"name": "mock-v1", "labels": {"x": "y"}, "generation": 9},
            "spec": {
                "description": "for humans",
                "modules": [{"type": "provider", "name": "mock", "provider": {"family": "mock"}}],
            },
        }
    )
    assert render([described, *pipelines[1:]], routes).revision == before.revision


# --------------------------------------------------------------------------- ConfigMap


def test_render_configmap() -> None:
    pipelines, routes = sample()
    doc = render(pipelines, routes)
    text = render_configmap(doc)
    manifest = yaml.safe_load(text)
    assert manifest["apiVersion"] == "v1"
    assert manifest["kind"] == "ConfigMap"
    assert manifest["metadata"]["name"] == CONFIGMAP_NAME == "vpipe-config"
    assert manifest["metadata"]["namespace"] == "default"
    assert manifest["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "vpipe"
    assert manifest["metadata"]["annotations"] == {REVISION_ANNOTATION: doc.revision}
    assert list(manifest["data"]) == [CONFIGMAP_KEY]
    raw = manifest["data"]["config.json"]
    assert raw == doc.to_json().decode() + "\n"
    assert parse_document(raw) == doc
    assert "config.json: |" in text  # readable literal block, not an escaped one-liner


def test_render_configmap_is_deterministic() -> None:
    pipelines, routes = sample()
    assert render_configmap(render(pipelines, routes)) == render_configmap(
        render(pipelines[::-1], routes[::-1])
    )


def test_render_configmap_round_trips_unusual_model_names() -> None:
    models = ["模型-*", "re:a\\d+b", "x'y\"z", "tab\there"]
    doc = render([pipe("p", {"family": "mock"})], [route("r", models, "p")])
    manifest = yaml.safe_load(render_configmap(doc))
    assert parse_document(manifest["data"]["config.json"]).routes[0].models == models


def test_render_configmap_for_another_namespace() -> None:
    doc = render([pipe("p", {"family": "mock"}, namespace="team-a")], [])
    assert yaml.safe_load(render_configmap(doc))["metadata"]["namespace"] == "team-a"


# --------------------------------------------------------------------------- secrets


def test_no_secret_values_only_references(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPIPE_SECRET_DEEPSEEK_API_KEY", "sk-live-should-never-appear")
    pipelines, routes = sample()
    doc = render(pipelines, routes)
    text = render_configmap(doc)
    assert "sk-live" not in text
    data = doc.model_dump(by_alias=True)
    refs = [v["config"]["credentials"] for v in data["instances"].values()]
    assert {"name": "deepseek", "key": "api-key"} in refs
    for ref in refs:
        assert ref is None or set(ref) == {"name", "key"}
    for instance in data["instances"].values():
        del instance["config"]["credentials"]  # checked above: a {name, key} reference
    for key, value in walk(data):
        assert key not in INLINE_SECRET_FIELDS, key
        if key == "headers":
            assert not {h.lower() for h in value} & SECRET_HEADERS
