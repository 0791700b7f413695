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
