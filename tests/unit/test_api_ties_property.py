"""Priority-tie detection: the prefix-indexed pairing finds exactly the pairs a brute-force
comparison of every two patterns finds (hypothesis)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from vpipe_api.patterns import compile_pattern, may_overlap
from vpipe_api.validation import _fuzzy_pairs

GLOB = st.one_of(
    st.builds(lambda p, s: p + "*" + s, st.text("ab-", max_size=3), st.text("ab", max_size=2)),
    st.builds(lambda p: p + "?", st.text("ab", max_size=3)),
    st.builds(lambda p: "re:" + p + ".*", st.text("ab", max_size=2)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(GLOB, min_size=2, max_size=12))
def test_pairs_match_brute_force(sources: list[str]) -> None:
    # Route identity only matters through `is`; plain sentinels stand in for resolved routes.
    routes = [object() for _ in sources]
    fuzzy = [(r, compile_pattern(s)) for r, s in zip(routes, sources, strict=True)]
    found = {frozenset((id(a), id(b))) for a, b, _ in _fuzzy_pairs(fuzzy)}  # type: ignore[arg-type]
    expected = {frozenset((id(ra), id(rb)))
                for (ra, pa), (rb, pb) in itertools.combinations(fuzzy, 2) if may_overlap(pa, pb)}
    assert found == expected


EXACT = st.text("ab-", min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(GLOB, EXACT), min_size=2, max_size=10))
def test_validate_reports_exactly_the_overlapping_pairs(sources: list[str]) -> None:
    from vpipe_api.errors import ConfigInvalid
    from vpipe_api.resources import Pipeline, Route
    from vpipe_api.validation import validate

    pipeline = Pipeline.model_validate({
        "metadata": {"name": "p"},
        "spec": {"modules": [{"type": "provider", "provider": {"family": "mock"}}]}})
    routes = [Route.model_validate({"metadata": {"name": f"r{i}"},
                                    "spec": {"match": {"models": [s]}, "pipeline": "p"}})
              for i, s in enumerate(sources)]
    patterns = [compile_pattern(s) for s in sources]
    expected = {frozenset((f"r{i}", f"r{j}"))
                for i, j in itertools.combinations(range(len(sources)), 2)
                if may_overlap(patterns[i], patterns[j])}
    try:
        validate([pipeline], routes)
        found: set[frozenset[str]] = set()
    except ConfigInvalid as e:
        found = {frozenset((i.resource.rsplit("/", 1)[1], i.message.split("'")[1]))
                 for i in e.issues}
    assert found == expected
