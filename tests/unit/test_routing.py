"""The router (pure): priority order, conditions, explanations, and the candidate index.

Aspects: the highest-priority route whose conditions hold wins; protocol, path prefix (whole
segments) and header conditions; 404 messages name the model and near misses; the literal-prefix
index and the cache return exactly what a brute-force scan of every pattern returns.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vpipe_api.document import RouteDoc
from vpipe_proxy.routing import Router


def doc(name: str, models: list[str], priority: int = 0, **kw: object) -> RouteDoc:
    return RouteDoc(name=name, priority=priority, pipeline=f"p-{name}", models=models,
                    protocols=kw.pop("protocols", ["openai-chat"]), **kw)  # type: ignore[arg-type]


def test_priority_then_conditions() -> None:
    router = Router([
        doc("gold", ["gpt-*"], 10, headers={"x-tier": "gold"}),
        doc("team", ["gpt-*"], 5, path_prefix="/team-a"),
        doc("all", ["gpt-*", "re:o[0-9]+"], 0),
    ])
    assert router.route("gpt-4", "openai-chat", "", {"x-tier": "gold"}).name == "gold"  # type: ignore[union-attr]
    assert router.route("gpt-4", "openai-chat", "/team-a/x", {}).name == "team"  # type: ignore[union-attr]
    assert router.route("gpt-4", "openai-chat", "/team-ab", {}).name == "all"  # type: ignore[union-attr]
    assert router.route("o3", "openai-chat", "", {}).name == "all"  # type: ignore[union-attr]
    assert router.route("o3x", "openai-chat", "", {}) is None
    assert router.route("gpt-4", "openai-embeddings", "", {}) is None


def test_no_route_message_names_near_misses_and_patterns() -> None:
    router = Router([doc("gold", ["gpt-*"], headers={"x-tier": "gold"}), doc("c", ["claude"])])
    near = router.no_route_message("gpt-4", "openai-chat", "", {})
    assert "model 'gpt-4'" in near and "route 'gold' needs header x-tier: gold" in near
    far = router.no_route_message("llama", "openai-chat", "", {})
    assert "Routes accept models: claude, gpt-*" in far


def test_explain_gives_every_route_a_verdict() -> None:
    router = Router([doc("a", ["x"], 2), doc("b", ["x*"], 1), doc("c", ["y"])])
    verdicts = {v.route: v for v in router.explain("x", "openai-chat")}
    assert verdicts["a"].matched and verdicts["a"].reason == "selected"
    assert "higher-priority route ('a')" in verdicts["b"].reason
    assert verdicts["c"].reason == "model matches none of y"


PATTERN = st.one_of(
    st.text("ab-", min_size=1, max_size=4),
    st.builds(lambda p, s: p + "*" + s, st.text("ab-", max_size=3), st.text("ab", max_size=2)),
    st.builds(lambda p: p + "?", st.text("ab", max_size=3)),
    st.builds(lambda p: "re:" + p + ".*", st.text("ab", max_size=2)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(PATTERN, min_size=1, max_size=3), min_size=1, max_size=12),
       st.lists(st.text("ab-", max_size=6), min_size=1, max_size=10))
def test_index_agrees_with_brute_force(patterns: list[list[str]], models: list[str]) -> None:
    router = Router([doc(f"r{i}", p, priority=-i) for i, p in enumerate(patterns)])
    for model in models * 2:  # the second pass is served from the cache
        expected = [r for r in router.routes if any(p.matches(model) for p in r.patterns)]
        assert list(router.candidates(model)) == expected
