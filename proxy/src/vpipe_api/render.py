"""The pure renderer: Pipelines + Routes -> the proxy's config document.

One function serves the operator in-cluster, `vpipe render` for GitOps and `vpipe serve -f`
locally, so all three produce byte-identical documents for the same resources.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from vpipe_api.document import (
    CONFIGMAP_KEY,
    CONFIGMAP_NAME,
    MANAGED_LABELS,
    REVISION_ANNOTATION,
    CanaryDoc,
    ConfigDocument,
    InstanceDoc,
    ModuleRefDoc,
    PipelineDoc,
    RouteDoc,
    instance_key,
)
from vpipe_api.resources import Pipeline, Route
from vpipe_api.validation import validate


def render(
    pipelines: Sequence[Pipeline], routes: Sequence[Route], *, namespace: str | None = None,
    weights: Mapping[str, int] | None = None,
) -> ConfigDocument:
    """Validate and render one namespace; raises `ConfigInvalid` with every problem found.

    `weights` maps Route names to the canary weight the proxies should apply now (the operator
    passes its rollout state); a Route not in it gets `spec.canary.weight`, which with a steps
    plan is 0, so `vpipe render` offline serves no canary traffic until a promote.
    """
    weights = weights or {}
    valid = validate(pipelines, routes, namespace=namespace)
    instances: dict[str, InstanceDoc] = {}
    pipeline_docs: dict[str, PipelineDoc] = {}
    for name in sorted(valid.pipelines):
        resolved = valid.pipelines[name]
        refs = []
        for module in resolved.modules:
            key = instance_key(module.type, module.config)
            instances[key] = InstanceDoc(type=module.type, config=module.config)
            refs.append(ModuleRefDoc(name=module.name, type=module.type, instance=key))
        pipeline_docs[name] = PipelineDoc(modules=refs, accepts=sorted(resolved.accepts),
                                          hints=resolved.hints)
    ordered = sorted(valid.routes, key=lambda r: (-r.route.spec.priority, r.route.metadata.name))
    route_docs = [
        RouteDoc(
            name=r.route.metadata.name,
            priority=r.route.spec.priority,
            pipeline=r.route.spec.pipeline,
            models=list(r.route.spec.match.models),
            protocols=list(r.protocols),
            path_prefix=r.route.spec.match.path_prefix,
            headers={k.lower(): v for k, v in r.route.spec.match.headers.items()},
            canary=_canary(r.route, weights.get(r.route.metadata.name)),
        )
        for r in ordered
    ]
    document = ConfigDocument(
        namespace=valid.namespace,
        instances=dict(sorted(instances.items())),
        pipelines=pipeline_docs,
        routes=route_docs,
    )
    return document.with_revision()


def _canary(route: Route, weight: int | None) -> CanaryDoc | None:
    canary = route.spec.canary
    if canary is None:
        return None
    header = canary.stickiness.header if canary.stickiness else None
    return CanaryDoc(pipeline=canary.pipeline,
                     weight=canary.weight if weight is None else max(0, min(100, weight)),
                     mode=canary.mode,
                     stickiness_header=header.lower() if header else None)


def configmap_manifest(document: ConfigDocument) -> dict[str, Any]:
    """The ConfigMap the operator writes for `document`, as a Kubernetes object."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CONFIGMAP_NAME,
            "namespace": document.namespace,
            "labels": dict(MANAGED_LABELS),
            "annotations": {REVISION_ANNOTATION: document.revision},
        },
        "data": {CONFIGMAP_KEY: document.to_json().decode() + "\n"},
    }


def render_configmap(document: ConfigDocument) -> str:
    """The ConfigMap YAML the operator writes for `document` (what `vpipe render` prints)."""
    return yaml.dump(configmap_manifest(document), Dumper=_BlockDumper, sort_keys=False,
                     width=1_000_000)


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks so the JSON in the ConfigMap stays readable."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_representer)
