"""Shared pieces of the injection tests: pods, a JSONPatch applier, a fake Secret source."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vpipe_operator.injection.lookup import SecretLookupError


def make_pod(*, annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None,
             **spec: Any) -> dict[str, Any]:
    """A Pod as the API server sends it for CREATE (generateName, no name yet)."""
    metadata: dict[str, Any] = {"generateName": "app-7d9f-", "namespace": "team-a"}
    if annotations is not None:
        metadata["annotations"] = annotations
    if labels is not None:
        metadata["labels"] = labels
    body = {"containers": [{"name": "app", "image": "python:3.11-slim"}], **spec}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body}


def apply_patch(document: dict[str, Any], patch: list[dict[str, Any]] | tuple[Any, ...]) -> Any:
    """Apply an RFC 6902 patch: with `jsonpatch` when installed, else the "add" subset here."""
    try:
        import jsonpatch
    except ImportError:
        return _apply_adds(copy.deepcopy(document), patch)
    return jsonpatch.apply_patch(document, list(patch))


def _apply_adds(document: Any, patch: Any) -> Any:
    for op in patch:
        assert op["op"] == "add", op
        *parents, last = [t.replace("~1", "/").replace("~0", "~") for t in op["path"].split("/")[1:]]
        target = document
        for token in parents:
            target = target[int(token)] if isinstance(target, list) else target[token]
        value = copy.deepcopy(op["value"])
        if isinstance(target, list):
            target.insert(len(target) if last == "-" else int(last), value)
        else:
            target[last] = value
    return document


class FakeSecrets:
    """A `SecretSource` answering from a dict; records the namespaces asked about."""

    def __init__(self, names: dict[str, tuple[str, ...]] | None = None, *,
                 error: Exception | None = None, delay: float = 0.0) -> None:
        self.names = names or {}
        self.error = error
        self.delay = delay
        self.asked: list[str] = []

    async def secret_names(self, namespace: str) -> tuple[str, ...]:
        import asyncio

        self.asked.append(namespace)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.names.get(namespace, ())


@pytest.fixture
def secrets() -> FakeSecrets:
    return FakeSecrets({"team-a": ("deepseek", "glm")})


@pytest.fixture
def failing_secrets() -> FakeSecrets:
    return FakeSecrets(error=SecretLookupError("GET /api/v1/namespaces/team-a/configmaps/"
                                               "vpipe-config answered 403"))
