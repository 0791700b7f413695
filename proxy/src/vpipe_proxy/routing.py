"""The router: which Route takes a request, decided from precompiled routes.

Model patterns are compiled once per config. Exact names sit in a dict; globs are indexed by
their literal prefix (a glob can only match names that start with it), so a model name seen for
the first time is checked against the few patterns that could match, not all of them; every
`re:` regex is matched in one RE2 set pass (linear in the name). The
candidate list for each model name seen (routes whose patterns match, in priority order) is
cached, so a repeat decision is a dict lookup plus a few set/prefix checks. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from vpipe_api.document import CanaryDoc, RouteDoc
from vpipe_api.patterns import ModelPattern, RegexSet, compile_pattern

_CACHE_LIMIT: Final = 10_000  # distinct model names remembered; cleared when full


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    name: str
    priority: int
    pipeline: str
    patterns: tuple[ModelPattern, ...]
    protocols: frozenset[str]
    path_prefix: str | None
    headers: tuple[tuple[str, str], ...]
    canary: CanaryDoc | None = None

    def refusal(self, protocol: str, prefix: str, headers: Mapping[str, str]) -> str | None:
        """Why this route does not take a request its model patterns matched, or None."""
        if protocol not in self.protocols:
            return f"takes protocols {', '.join(sorted(self.protocols))}, not {protocol}"
        if self.path_prefix is not None and not (
            prefix == self.path_prefix or prefix.startswith(self.path_prefix + "/")
        ):
            return f"needs path prefix {self.path_prefix} (request had {prefix or 'none'})"
        for name, value in self.headers:
            if headers.get(name) != value:
                return f"needs header {name}: {value}"
        return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """One line of an explanation: did this route take the request, and if not, why."""

    route: str
    pipeline: str
    priority: int
    matched: bool
    reason: str


class Router:
    """Routes in priority order, compiled for fast decisions."""

    def __init__(self, routes: Sequence[RouteDoc]) -> None:
        self.routes: tuple[CompiledRoute, ...] = tuple(
            CompiledRoute(
                name=r.name,
                priority=r.priority,
                pipeline=r.pipeline,
                patterns=tuple(compile_pattern(p) for p in r.models),
                protocols=frozenset(r.protocols),
                path_prefix=r.path_prefix,
                headers=tuple(sorted(r.headers.items())),
                canary=r.canary,
            )
            for r in sorted(routes, key=lambda r: (-r.priority, r.name))
        )
        self._exact: dict[str, list[int]] = {}
        self._by_prefix: dict[str, list[tuple[int, ModelPattern]]] = {}
        self._unindexed: list[tuple[int, ModelPattern]] = []  # globs starting with a wildcard
        regexes: list[tuple[int, ModelPattern]] = []
        for index, route in enumerate(self.routes):
            for pattern in route.patterns:
                prefix = pattern.literal_prefix
                if pattern.kind == "exact":
                    self._exact.setdefault(pattern.source, []).append(index)
                elif pattern.kind == "regex":
                    regexes.append((index, pattern))
                elif prefix:
                    self._by_prefix.setdefault(prefix, []).append((index, pattern))
                else:
                    self._unindexed.append((index, pattern))
        self._prefix_lengths = sorted({len(p) for p in self._by_prefix})
        self._regex_routes = tuple(index for index, _ in regexes)
        self._regexes = RegexSet([pattern for _, pattern in regexes])
        self._cache: dict[str, tuple[CompiledRoute, ...]] = {}

    def candidates(self, model: str) -> tuple[CompiledRoute, ...]:
        """Routes whose model patterns match `model`, highest priority first."""
        found = self._cache.get(model)
        if found is None:
            indices = set(self._exact.get(model, ()))
            for length in self._prefix_lengths:
                if length > len(model):
                    break
                for i, pattern in self._by_prefix.get(model[:length], ()):
                    if pattern.matches(model):
                        indices.add(i)
            indices.update(i for i, pattern in self._unindexed if pattern.matches(model))
            if self._regex_routes:
                indices.update(self._regex_routes[k] for k in self._regexes.matching(model))
            found = tuple(self.routes[i] for i in sorted(indices))
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[model] = found
        return found

    def route(
        self, model: str, protocol: str, prefix: str, headers: Mapping[str, str]
    ) -> CompiledRoute | None:
        """The route that takes the request, or None (the caller answers 404)."""
        for route in self.candidates(model):
            if route.refusal(protocol, prefix, headers) is None:
                return route
        return None

    def explain(
        self, model: str, protocol: str, prefix: str = "", headers: Mapping[str, str] | None = None
    ) -> list[Verdict]:
        """Every route's verdict on a request, in the order the router tries them."""
        headers = headers or {}
        matching = {r.name for r in self.candidates(model)}
        chosen = self.route(model, protocol, prefix, headers)
        verdicts = []
        for route in self.routes:
            if route.name not in matching:
                reason = "model matches none of " + ", ".join(p.source for p in route.patterns)
            elif route is chosen:
                reason = "selected"
            else:
                reason = route.refusal(protocol, prefix, headers) or (
                    f"a higher-priority route ('{chosen.name}') was selected" if chosen else ""
                )
            verdicts.append(Verdict(route.name, route.pipeline, route.priority,
                                    route is chosen, reason))
        return verdicts

    def no_route_message(
        self, model: str, protocol: str, prefix: str, headers: Mapping[str, str]
    ) -> str:
        """A 404 message naming the model and what the routes look for."""
        where = f"model '{model}' (protocol {protocol}"
        where += f", path prefix {prefix})" if prefix else ")"
        near = [
            f"route '{r.name}' {r.refusal(protocol, prefix, headers)}"
            for r in self.candidates(model)
        ]
        if near:
            return f"No route takes {where}: " + "; ".join(near[:5]) + "."
        patterns = list(dict.fromkeys(p.source for r in self.routes for p in r.patterns))
        if not patterns:
            return f"No route takes {where}: no Routes are configured in this namespace."
        shown = ", ".join(patterns[:20]) + (" ..." if len(patterns) > 20 else "")
        return (f"No route takes {where}. Routes accept models: {shown}. Use one of these "
                "names or add a Route for this model.")
