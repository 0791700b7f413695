"""Prerun validation: every rule that spans resources, checked before anything is served.

All problems are collected and raised together in one `ConfigInvalid`, each naming the resource
and field and saying how to fix it. A config that passes here renders and loads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vpipe_api.compat import expand
from vpipe_api.errors import ConfigInvalid, Issue
from vpipe_api.patterns import ModelPattern, PatternError, compile_pattern, may_overlap
from vpipe_api.protocols import CONVERSIONS, MODULE_ACCEPTS, pipeline_accepts
from vpipe_api.resolve import resolve_provider
from vpipe_api.resources import Pipeline, Route


@dataclass(frozen=True)
class ResolvedModule:
    name: str
    type: str
    config: dict[str, Any]  # normalized, JSON-ready


@dataclass(frozen=True)
class ResolvedPipeline:
    name: str
    modules: tuple[ResolvedModule, ...]
    accepts: frozenset[str]
    hints: str = "drop"  # the Pipeline's field policy setting (drop | refuse)


@dataclass(frozen=True)
class ResolvedRoute:
    route: Route
    protocols: tuple[str, ...]


@dataclass(frozen=True)
class ValidatedResources:
    """The output of validation, ready for the renderer."""

    namespace: str
    pipelines: dict[str, ResolvedPipeline]
    routes: tuple[ResolvedRoute, ...]


def validate(
    pipelines: Sequence[Pipeline], routes: Sequence[Route], *, namespace: str | None = None
) -> ValidatedResources:
    """Check one namespace's resources; raise `ConfigInvalid` listing every problem."""
    issues: list[Issue] = []
    namespaces = {p.metadata.namespace for p in pipelines} | {r.metadata.namespace for r in routes}
    if namespace is None:
        if len(namespaces) > 1:
            raise ConfigInvalid([Issue(
                "resources", "metadata.namespace",
                f"resources span namespaces {sorted(namespaces)}; a config serves one namespace: "
                "pick one (e.g. --namespace NAME)",
            )])
        namespace = next(iter(namespaces), "default")
    pipelines = [p for p in pipelines if p.metadata.namespace == namespace]
    routes = [r for r in routes if r.metadata.namespace == namespace]

    issues += _duplicates(pipelines)
    issues += _duplicates(routes)
    resolved: dict[str, ResolvedPipeline] = {}
    for pipeline in pipelines:
        result, found = _resolve_pipeline(pipeline)
        issues += found
        if result is not None:
            resolved.setdefault(result.name, result)

    known = {p.metadata.name for p in pipelines}
    resolved_routes: list[ResolvedRoute] = []
    compiled: dict[str, list[ModelPattern]] = {}
    for route in routes:
        if route.metadata.name in compiled:
            continue  # a duplicate: reported above, and its copy must not be tie-checked
        patterns, found = _compile_patterns(route)
        issues += found
        compiled[route.metadata.name] = patterns
        name = route.spec.pipeline
        if name not in known:
            hint = f"known pipelines: {', '.join(sorted(known))}" if known else "none exist yet"
            issues.append(Issue(route.ref, "spec.pipeline",
                                f"Pipeline '{name}' does not exist in namespace "
                                f"'{namespace}' ({hint}); create it or fix the name"))
            continue
        pipeline_result = resolved.get(name)
        if pipeline_result is None:
            continue  # the pipeline's own issues are already reported
        protocols, found = _route_protocols(route, pipeline_result)
        issues += found
        issues += _canary_issues(route, protocols, resolved, known, namespace)
        resolved_routes.append(ResolvedRoute(route, protocols))

    issues += _priority_ties(resolved_routes, compiled)
    if issues:
        raise ConfigInvalid(issues)
    return ValidatedResources(namespace, resolved, tuple(resolved_routes))


def _duplicates(resources: Sequence[Pipeline | Route]) -> list[Issue]:
    seen: set[str] = set()
    issues = []
    for resource in resources:
        if resource.ref in seen:
            issues.append(Issue(resource.ref, "metadata.name",
                                f"{resource.kind} '{resource.metadata.name}' is defined more than "
                                "once; rename or remove one copy"))
        seen.add(resource.ref)
    return issues


def _resolve_pipeline(pipeline: Pipeline) -> tuple[ResolvedPipeline | None, list[Issue]]:
    issues: list[Issue] = []
    modules: list[ResolvedModule] = []
    names: set[str] = set()
    last = len(pipeline.spec.modules) - 1
    for index, spec in enumerate(pipeline.spec.modules):
        field = f"spec.modules[{index}]"
        if spec.display_name in names:
            issues.append(Issue(pipeline.ref, f"{field}.name",
                                f"module name '{spec.display_name}' is used twice in this "
                                "pipeline; give each module a distinct name"))
        names.add(spec.display_name)
        if spec.type == "provider" and index != last:
            issues.append(Issue(pipeline.ref, field,
                                "a provider must be the last module of a pipeline (it answers "
                                "the request); move it to the end or remove the extra provider"))
        if spec.compatibility is not None:
            rules = expand(spec.compatibility)
            if isinstance(rules, str):
                issues.append(Issue(pipeline.ref, f"{field}.compatibility.preset", rules))
            else:
                dumped = [r.model_dump(by_alias=True, exclude_none=True) for r in rules]
                modules.append(ResolvedModule(spec.display_name, spec.type, {"rules": dumped}))
        if spec.provider is not None:
            config, found = resolve_provider(spec.provider, pipeline.ref, f"{field}.provider")
            issues += found
            if config is not None:
                modules.append(ResolvedModule(spec.display_name, spec.type,
                                              config.model_dump(by_alias=True)))
    if pipeline.spec.modules[last].type != "provider":
        issues.append(Issue(pipeline.ref, f"spec.modules[{last}]",
                            "the last module must be a provider; add one (e.g. {type: provider, "
                            "provider: {family: mock}})"))
    if issues:
        return None, issues
    provider_protocol = str(modules[-1].config["protocol"])
    for index, module in enumerate(modules[:-1]):
        shapes = MODULE_ACCEPTS[module.type]
        if provider_protocol not in shapes:
            issues.append(Issue(pipeline.ref, f"spec.modules[{index}]",
                                f"module '{module.name}' ({module.type}) handles "
                                f"{', '.join(sorted(shapes))} requests, but the provider speaks "
                                f"{provider_protocol}; remove the module or change the provider"))
    if issues:
        return None, issues
    accepts = pipeline_accepts(provider_protocol)
    for module in modules[:-1]:  # clients the llmswitch converts still reach every module
        accepts = frozenset(p for p in accepts if p in MODULE_ACCEPTS[module.type]
                            or p in CONVERSIONS)
    return ResolvedPipeline(pipeline.metadata.name, tuple(modules), accepts,
                            pipeline.spec.hints), []


def _compile_patterns(route: Route) -> tuple[list[ModelPattern], list[Issue]]:
    patterns, issues = [], []
    for index, source in enumerate(route.spec.match.models):
        try:
            patterns.append(compile_pattern(source))
        except PatternError as e:
            issues.append(Issue(route.ref, f"spec.match.models[{index}]", str(e)))
    return patterns, issues


def _route_protocols(
    route: Route, pipeline: ResolvedPipeline
) -> tuple[tuple[str, ...], list[Issue]]:
    """Protocol guard: every protocol the route takes must flow through its pipeline's chain."""
    if route.spec.match.protocols is None:
        return tuple(sorted(pipeline.accepts)), []
    issues = []
    provider = pipeline.modules[-1]
    for index, protocol in enumerate(route.spec.match.protocols):
        if protocol not in pipeline.accepts:
            issues.append(Issue(
                route.ref, f"spec.match.protocols[{index}]",
                f"client protocol '{protocol}' cannot flow through Pipeline '{pipeline.name}': "
                f"its module '{provider.name}' (protocol {provider.config['protocol']}) accepts "
                f"only {', '.join(sorted(pipeline.accepts))}; remove '{protocol}' here or route "
                "it to a pipeline whose provider speaks it",
            ))
    return tuple(dict.fromkeys(route.spec.match.protocols)), issues


def _canary_issues(route: Route, protocols: tuple[str, ...], resolved: dict[str, ResolvedPipeline],
                   known: set[str], namespace: str) -> list[Issue]:
    """The canary must exist, differ from the stable pipeline, and serve the same protocols."""
    canary = route.spec.canary
    if canary is None:
        return []
    field = "spec.canary.pipeline"
    if canary.pipeline == route.spec.pipeline:
        return [Issue(route.ref, field, f"the canary is the stable pipeline '{canary.pipeline}'; "
                      "name a different Pipeline, or remove spec.canary")]
    if canary.pipeline not in known:
        return [Issue(route.ref, field, f"canary Pipeline '{canary.pipeline}' does not exist in "
                      f"namespace '{namespace}'; create it or fix the name")]
    target = resolved.get(canary.pipeline)
    if target is None:
        return []  # its own issues are reported
    missing = [p for p in protocols if p not in target.accepts]
    if missing:
        return [Issue(route.ref, field, f"canary Pipeline '{canary.pipeline}' cannot serve "
                      f"{', '.join(missing)}, which this Route takes; a request must be servable "
                      "by either version")]
    return []


def _priority_ties(
    routes: Sequence[ResolvedRoute], compiled: dict[str, list[ModelPattern]]
) -> list[Issue]:
    """Two routes of equal priority that could take the same request make routing a coin toss."""
    by_priority: dict[int, list[ResolvedRoute]] = defaultdict(list)
    for resolved in routes:
        by_priority[resolved.route.spec.priority].append(resolved)
    issues: list[Issue] = []
    reported: set[tuple[str, str]] = set()
    for group in by_priority.values():
        if len(group) < 2:
            continue
        # Exact names are bucketed so 1,000 exact-name routes stay linear.
        exact: dict[str, list[ResolvedRoute]] = defaultdict(list)
        fuzzy: list[tuple[ResolvedRoute, ModelPattern]] = []
        for resolved in group:
            for pattern in compiled[resolved.route.metadata.name]:
                if pattern.kind == "exact":
                    exact[pattern.source].append(resolved)
                else:
                    fuzzy.append((resolved, pattern))
        candidates: list[tuple[ResolvedRoute, ResolvedRoute, str]] = []
        by_prefix: dict[str, list[tuple[ResolvedRoute, ModelPattern]]] = defaultdict(list)
        for item in fuzzy:
            by_prefix[item[1].literal_prefix].append(item)
        lengths = sorted({len(p) for p in by_prefix})
        for name, holders in exact.items():
            for i, a in enumerate(holders):
                candidates += [(a, b, name) for b in holders[i + 1:]]
            # Only globs whose literal prefix starts this name can match it.
            for length in lengths:
                if length > len(name):
                    break
                for resolved, pattern in by_prefix.get(name[:length], ()):
                    if pattern.matches(name):
                        candidates += [(resolved, b, name) for b in holders]
        candidates += _fuzzy_pairs(fuzzy)
        for a, b, model in candidates:
            key = tuple(sorted((a.route.metadata.name, b.route.metadata.name)))
            if a is b or key in reported or not _conditions_overlap(a, b):
                continue
            reported.add((key[0], key[1]))
            issues.append(Issue(
                b.route.ref, "spec.priority",
                f"ties with Route '{a.route.metadata.name}' at priority {a.route.spec.priority} "
                f"and both can match model '{model}'; give one a higher priority or make their "
                "matches disjoint",
            ))
    return issues


def _fuzzy_pairs(
    fuzzy: list[tuple[ResolvedRoute, ModelPattern]],
) -> list[tuple[ResolvedRoute, ResolvedRoute, str]]:
    """Pairs of globs/regexes that may match one name. Two globs can only overlap when one's
    literal prefix starts the other's, so each pattern is compared with the patterns filed
    under its own prefix's prefixes (regexes file under "", and so meet everything)."""
    by_prefix: dict[str, list[int]] = defaultdict(list)
    for index, (_, pattern) in enumerate(fuzzy):
        by_prefix[pattern.literal_prefix].append(index)
    pairs = []
    for i, (a, pa) in enumerate(fuzzy):
        prefix = pa.literal_prefix
        for k in range(len(prefix) + 1):
            for j in by_prefix.get(prefix[:k], ()):
                shorter = k < len(prefix)
                if (shorter or j < i) and j != i:
                    b, pb = fuzzy[j]
                    if may_overlap(pa, pb):
                        pairs.append((b, a, f"{pb.source} / {pa.source}"))
    return pairs


def _conditions_overlap(a: ResolvedRoute, b: ResolvedRoute) -> bool:
    if not set(a.protocols) & set(b.protocols):
        return False
    pa, pb = a.route.spec.match.path_prefix, b.route.spec.match.path_prefix
    if pa and pb and not (pa == pb or pa.startswith(pb + "/") or pb.startswith(pa + "/")):
        return False
    ha = {k.lower(): v for k, v in a.route.spec.match.headers.items()}
    hb = {k.lower(): v for k, v in b.route.spec.match.headers.items()}
    return all(hb[k] == v for k, v in ha.items() if k in hb)
