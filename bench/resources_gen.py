"""Generated Pipeline and Route manifests: one route for the network tests, N for routing/reload.

The N-route set mixes exact names, globs and a few `re:` regexes, every route at a distinct
priority (so validation has no ties to check and the router a strict order). The lowest-priority
route is the glob `tail-*`: `tail-<anything>` is matched by it and by nothing else, and
`nomatch-<anything>` by no route at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml

from vpipe_api.resources import Pipeline, Route

GROUP_VERSION: Final = "vpipe.io/v1alpha1"
BENCH_MODEL: Final = "bench-model"
TAIL_ROUTE_PATTERN: Final = "tail-*"


def pipeline(name: str, base_url: str, *, max_connections: int = 256) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION, "kind": "Pipeline", "metadata": {"name": name},
        "spec": {"modules": [{"type": "provider", "name": "upstream", "provider": {
            "family": "openai-compatible", "baseUrl": base_url,
            "maxConnections": max_connections}}]},
    }


def route(name: str, models: list[str], pipeline_name: str, priority: int) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION, "kind": "Route", "metadata": {"name": name},
        "spec": {"match": {"models": models}, "priority": priority, "pipeline": pipeline_name},
    }


def single_route(base_url: str) -> list[dict[str, Any]]:
    """The network tests' config: one Pipeline to the fast upstream, one exact-name Route."""
    return [pipeline("bench", base_url), route("bench", [BENCH_MODEL], "bench", 100)]


def many_routes(n: int, base_url: str, *, pipelines: int = 5,
                extra_models: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """`pipelines` Pipelines (distinct provider instances) and `n` Routes.

    Route i (priority n - i): every 100th a regex, every 4th a glob, the rest exact names; the
    last one is `tail-*`. `extra_models` are appended to route 7's names (to make a changed
    revision for reload tests).
    """
    docs = [pipeline(f"p{j}", base_url, max_connections=200 + j) for j in range(pipelines)]
    for i in range(n):
        if i == n - 1:
            models = [TAIL_ROUTE_PATTERN]
        elif i % 100 == 50:
            models = [f"re:rx{i}-(mini|large)-[0-9]+"]
        elif i % 4 == 1:
            models = [f"family{i}-*"]
        else:
            models = [f"model-{i}"]
        if i == 7:
            models = models + list(extra_models)
        docs.append(route(f"r{i:05d}", models, f"p{i % pipelines}", n - i))
    return docs


def models(docs: list[dict[str, Any]]) -> tuple[list[Pipeline], list[Route]]:
    """Parse generated manifests into the pydantic resource models `render` takes."""
    pipelines = [Pipeline.model_validate(d) for d in docs if d["kind"] == "Pipeline"]
    routes = [Route.model_validate(d) for d in docs if d["kind"] == "Route"]
    return pipelines, routes


def write(directory: Path, docs: list[dict[str, Any]], name: str = "resources.yaml") -> Path:
    """Write `docs` as one multi-document YAML file, atomically (readers never see half)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    temporary = directory / f".{name}.tmp"  # hidden: resource_files() skips it
    temporary.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
    temporary.replace(target)
    return target
