"""The versioned config document (`vpipe_api.document`): the operator/proxy contract.

Covers the parse_document round trip (bytes and str), refusing an unknown or missing
configVersion with a message naming both the version read and the one found, refusing
tampered content (revision mismatch), dangling references (route -> pipeline,
module -> instance), malformed and non-JSON input, the revision and instance-key helpers,
and the JSON shape (camelCase keys, sorted, no revision inside the hashed body).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from vpipe_api.document import (
    CONFIG_VERSION,
    ConfigDocument,
    InstanceDoc,
    ModuleRefDoc,
    PipelineDoc,
    RouteDoc,
    canonical_json,
    instance_key,
    parse_document,
)
from vpipe_api.errors import DocumentError, VpipeApiError
from vpipe_api.render import render
from vpipe_api.resources import Pipeline, Route

GV = "vpipe.io/v1alpha1"


def rendered() -> ConfigDocument:
    pipeline = Pipeline.model_validate(
        {
            "apiVersion": GV,
            "kind": "Pipeline",
            "metadata": {"name": "p"},
            "spec": {
                "modules": [
                    {
                        "type": "provider",
                        "name": "m",
                        "provider": {"family": "mock", "modelMap": {"a": "b"}},
                    }
                ]
            },
        }
    )
    route = Route.model_validate(
        {
            "apiVersion": GV,
            "kind": "Route",
            "metadata": {"name": "r"},
            "spec": {
                "match": {"models": ["gpt-*"], "pathPrefix": "/t", "headers": {"X-A": "1"}},
                "priority": 3,
                "pipeline": "p",
            },
        }
    )
    return render([pipeline], [route])


def as_dict(document: ConfigDocument) -> dict[str, Any]:
    value = orjson.loads(document.to_json())
    assert isinstance(value, dict)
    return value


def rehashed(data: dict[str, Any]) -> bytes:
    """`data` with a revision that matches its (edited) content."""
    body = {k: v for k, v in data.items() if k != "revision"}
    data = {**data, "revision": ConfigDocument.model_validate(body).content_revision()}
    return orjson.dumps(data)


def document_error(raw: bytes | str) -> str:
    with pytest.raises(DocumentError) as info:
        parse_document(raw)
    assert isinstance(info.value, VpipeApiError)
    return str(info.value)


# --------------------------------------------------------------------------- round trip


def test_round_trip_bytes_and_str() -> None:
    document = rendered()
    assert parse_document(document.to_json()) == document
    assert parse_document(document.to_json().decode()) == document
    assert parse_document(document.to_json()).to_json() == document.to_json()


def test_round_trip_of_empty_document() -> None:
    document = render([], [])
    assert parse_document(document.to_json()) == document


def test_json_shape() -> None:
    data = as_dict(rendered())
    assert list(data) == sorted(data)
    assert data["configVersion"] == CONFIG_VERSION == "vpipe.io/config.v1"
    assert data["namespace"] == "default"
    assert data["routes"] == [
        {
            "name": "r",
            "priority": 3,
            "pipeline": "p",
            "models": ["gpt-*"],
            "protocols": ["anthropic-messages", "openai-chat", "openai-embeddings", "openai-responses"],
            "pathPrefix": "/t",
            "headers": {"x-a": "1"},
            "canary": None,
        }
    ]
    (key,) = data["instances"]
    assert data["pipelines"] == {
        "p": {
            "modules": [{"name": "m", "type": "provider", "instance": key}],
            "accepts": ["anthropic-messages", "openai-chat", "openai-embeddings", "openai-responses"],
            "hints": "drop",
        }
    }
    assert data["instances"][key]["config"]["modelMap"] == {"a": "b"}


def test_revision_covers_everything_but_itself() -> None:
    document = rendered()
    assert document.revision == document.content_revision()
    assert document.with_revision() == document
    assert document.model_copy(update={"revision": "x"}).content_revision() == document.revision
    assert (
        document.model_copy(update={"namespace": "other"}).content_revision() != document.revision
    )


def test_instance_key_is_type_prefixed_and_order_independent() -> None:
    a = instance_key("provider", {"x": 1, "y": {"b": 2, "a": 1}})
    b = instance_key("provider", {"y": {"a": 1, "b": 2}, "x": 1})
    assert a == b
    assert a.startswith("provider-")
    assert len(a) == len("provider-") + 12
    assert instance_key("provider", {"x": 2}) != instance_key("provider", {"x": 1})
    assert instance_key("cache", {"x": 1}).startswith("cache-")
    assert instance_key("cache", {"x": 1})[6:] != instance_key("provider", {"x": 1})[9:]


def test_canonical_json_is_compact_and_sorted() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == b'{"a":[1,{"c":3,"d":2}],"b":1}'


# --------------------------------------------------------------------------- versions


def test_unknown_config_version_says_expected_and_got() -> None:
    data = as_dict(rendered())
    data["configVersion"] = "vpipe.io/config.v2"
    message = document_error(rehashed(data))
    assert "'vpipe.io/config.v2'" in message  # what it got
    assert f"reads {CONFIG_VERSION!r}" in message  # what it expects
    assert "upgrade the proxy" in message


def test_missing_config_version() -> None:
    data = as_dict(rendered())
    del data["configVersion"]
    message = document_error(orjson.dumps(data))
    assert "configVersion None" in message
    assert repr(CONFIG_VERSION) in message


# --------------------------------------------------------------------------- integrity


def test_tampered_content_is_rejected() -> None:
    data = as_dict(rendered())
    data["routes"][0]["priority"] = 1000
    message = document_error(orjson.dumps(data))
    assert f"revision {data['revision']!r} does not match its content" in message
    assert "render it again" in message


def test_tampered_revision_is_rejected() -> None:
    data = as_dict(rendered())
    data["revision"] = "0" * 16
    assert "does not match its content" in document_error(orjson.dumps(data))


def test_edit_with_recomputed_revision_is_accepted() -> None:
    data = as_dict(rendered())
    data["routes"][0]["priority"] = 1000
    assert parse_document(rehashed(data)).routes[0].priority == 1000


def test_route_to_undefined_pipeline_is_rejected() -> None:
    data = as_dict(rendered())
    data["routes"][0]["pipeline"] = "ghost"
    message = document_error(rehashed(data))
    assert "route 'r' refers to pipeline 'ghost'" in message
    assert "does not define" in message


def test_module_to_undefined_instance_is_rejected() -> None:
    data = as_dict(rendered())
    data["instances"] = {}
    message = document_error(rehashed(data))
    assert "pipeline 'p' module 'm' refers to instance 'provider-" in message
    assert "does not define" in message


def test_an_instance_key_that_does_not_hash_its_config_is_rejected() -> None:
    """The proxy reuses a live instance by key: a key kept across an edit of its config would
    keep serving the old instance with a config nobody built or checked."""
    data = as_dict(rendered())
    (instance,) = data["instances"].values()
    instance["config"]["baseUrl"] = "http://elsewhere.example/v1"
    message = document_error(rehashed(data))
    assert "does not match its config" in message and "render it again" in message


def test_document_built_by_hand_is_checked_the_same_way() -> None:
    key = instance_key("provider", {})
    document = ConfigDocument(
        namespace="n",
        instances={key: InstanceDoc(type="provider", config={})},
        pipelines={
            "p": PipelineDoc(
                modules=[ModuleRefDoc(name="m", type="provider", instance=key)],
                accepts=["openai-chat"],
            )
        },
        routes=[RouteDoc(name="r", priority=0, pipeline="q", models=["m"], protocols=[])],
    ).with_revision()
    assert "refers to pipeline 'q'" in document_error(document.to_json())


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", "{'single': 'quotes'}", b"\xff\xfe"])
def test_invalid_json_is_rejected(raw: bytes | str) -> None:
    assert document_error(raw).startswith("config document is not valid JSON")


@pytest.mark.parametrize("raw", [b"[]", b"42", b'"text"', b"null"])
def test_non_object_json_is_rejected(raw: bytes) -> None:
    assert document_error(raw) == "config document must be a JSON object"


def test_malformed_document_is_rejected() -> None:
    data = as_dict(rendered())
    data["surprise"] = True
    assert document_error(orjson.dumps(data)).startswith("config document is malformed")


def test_wrong_field_type_is_rejected() -> None:
    data = as_dict(rendered())
    data["routes"][0]["priority"] = "high"
    message = document_error(orjson.dumps(data))
    assert message.startswith("config document is malformed")
    assert "priority" in message
