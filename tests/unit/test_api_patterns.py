"""Model-name patterns (`vpipe_api.patterns`).

Covers how a pattern is classified (exact, glob, `re:` regex), that matching is always a
full match and case-sensitive, the errors bad patterns raise, the literal prefix used for
overlap reasoning, and the `may_overlap` truth table: symmetric, precise where it can be,
conservative (never says "disjoint" for two patterns a model name can both match); regexes
are RE2 (linear time, bounded; what RE2 cannot do is a PatternError) and a config's regexes
match as one set exactly as they do one by one, with a fallback when the set is too large.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpipe_api.patterns import ModelPattern, PatternError, RegexSet, compile_pattern, may_overlap


def p(source: str) -> ModelPattern:
    return compile_pattern(source)


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("gpt-4o", "exact"),
        ("team-a/llama-3.1:8b", "exact"),
        ("gpt-*", "glob"),
        ("gpt-?", "glob"),
        ("o[0-9]*", "glob"),
        ("re:gpt-.*", "regex"),
        ("re:gpt", "regex"),
    ],
)
def test_kind(source: str, kind: str) -> None:
    pattern = p(source)
    assert pattern.kind == kind
    assert pattern.source == source
    assert (pattern.regex is None) == (kind == "exact")


@pytest.mark.parametrize(
    ("source", "model", "expected"),
    [
        # exact: the whole name, case-sensitive
        ("gpt-4", "gpt-4", True),
        ("gpt-4", "GPT-4", False),
        ("gpt-4", "gpt-4o", False),
        ("gpt-4", "xgpt-4", False),
        ("gpt-4", "gpt-4 ", False),
        # globs: fnmatch syntax, anchored at both ends, case-sensitive
        ("gpt-4*", "gpt-4", True),
        ("gpt-4*", "gpt-4o-mini", True),
        ("gpt-4*", "GPT-4o", False),
        ("gpt-4*", "my-gpt-4o", False),
        ("*-mini", "gpt-4o-mini", True),
        ("*-mini", "gpt-4o-mini-2024", False),
        ("gpt-?", "gpt-4", True),
        ("gpt-?", "gpt-45", False),
        ("o[0-9]*", "o1", True),
        ("o[0-9]*", "o3-mini", True),
        ("o[0-9]*", "o", False),
        ("o[0-9]*", "oa", False),
        ("o[!0-9]*", "oa", True),
        ("o[!0-9]*", "o1", False),
        ("gpt-4.1*", "gpt-4.1-mini", True),
        ("gpt-4.1*", "gpt-4x1-mini", False),  # '.' is literal in a glob
        ("a*", "a\nb", True),  # '*' spans any character
        # regex: full match, not search; case-sensitive
        ("re:gpt-4.*", "gpt-4o", True),
        ("re:gpt-4.*", "xgpt-4o", False),
        ("re:gpt-4.*", "GPT-4o", False),
        ("re:gpt", "gpt-4", False),
        ("re:gpt-4|claude", "gpt-4", True),
        ("re:gpt-4|claude", "gpt-4x", False),
        ("re:gpt-4|claude", "claude", True),
        ("re:gpt-4|claude", "xclaude", False),
        ("re:(?i)gpt-4", "GPT-4", True),  # case-insensitivity only when asked for
        ("re:team-a/.+", "team-a/llama", True),
        ("re:team-a/.+", "team-a/", False),
    ],
)
def test_matches_full_and_case_sensitive(source: str, model: str, expected: bool) -> None:
    assert p(source).matches(model) is expected


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("", "is empty or has surrounding spaces"),
        (" gpt-4", "is empty or has surrounding spaces"),
        ("gpt-4\n", "is empty or has surrounding spaces"),
        ("re:", "has no regular expression after the prefix"),
        ("re:(", "is not a valid regular expression"),
        ("re:[a-", "is not a valid regular expression"),
        ("gpt-[4", "has an unclosed '[' character class"),
    ],
)
def test_bad_patterns(source: str, says: str) -> None:
    with pytest.raises(PatternError) as info:
        compile_pattern(source)
    assert says in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_glob_message_suggests_regex() -> None:
    with pytest.raises(PatternError, match=r"close it, or use 're:' for a regular expression"):
        compile_pattern("gpt-[4")


def test_bad_regex_message_names_the_pattern() -> None:
    with pytest.raises(PatternError, match=r"^model pattern 're:\(' is not a valid regular"):
        compile_pattern("re:(")


def test_glob_with_bracket_after_close_is_rejected() -> None:
    with pytest.raises(PatternError, match="unclosed"):
        compile_pattern("gpt-]4[")


@pytest.mark.parametrize(
    ("source", "prefix"),
    [
        ("gpt-4", "gpt-4"),
        ("gpt-4*", "gpt-4"),
        ("gpt-?x", "gpt-"),
        ("o[0-9]*", "o"),
        ("*-mini", ""),
        ("re:gpt-4.*", ""),
    ],
)
def test_literal_prefix(source: str, prefix: str) -> None:
    assert p(source).literal_prefix == prefix


OVERLAP_TABLE = [
    # exact / exact
    ("gpt-4", "gpt-4", True),
    ("gpt-4", "gpt-4o", False),
    ("gpt-4", "GPT-4", False),
    # exact / glob: precise, by matching the exact name
    ("gpt-4o", "gpt-*", True),
    ("claude-3", "gpt-*", False),
    ("o1", "o[0-9]*", True),
    ("ox", "o[0-9]*", False),
    # exact / regex: precise, by matching the exact name
    ("gpt-4o", "re:gpt-.*", True),
    ("claude", "re:gpt-.*", False),
    ("xgpt-4", "re:gpt-.*", False),
    # glob / glob: by literal prefix, conservative otherwise
    ("gpt-*", "gpt-4*", True),
    ("gpt-4*", "gpt-4*", True),
    ("gpt-*", "claude-*", False),
    ("gpt-4*", "gpt-5*", False),
    ("o[0-9]*", "gpt-*", False),
    ("*-mini", "*-large", True),
    ("*", "gpt-*", True),
    # regex / anything fuzzy: always assumed to overlap
    ("re:gpt-.*", "claude-*", True),
    ("re:gpt-.*", "re:claude-.*", True),
    ("re:a", "re:a", True),
]


@pytest.mark.parametrize(("a", "b", "expected"), OVERLAP_TABLE)
def test_may_overlap_truth_table(a: str, b: str, expected: bool) -> None:
    assert may_overlap(p(a), p(b)) is expected
    assert may_overlap(p(b), p(a)) is expected  # symmetric


SAMPLE_MODELS = [
    "gpt-4", "gpt-4o", "gpt-4o-mini", "gpt-5", "GPT-4", "claude", "claude-3", "o1", "o3-mini",
    "ox", "x-mini", "x-large", "a", "xgpt-4", "team-a/llama", "",
]  # fmt: skip


ALL_PATTERNS = sorted({row[0] for row in OVERLAP_TABLE} | {row[1] for row in OVERLAP_TABLE})


@pytest.mark.parametrize(("a", "b"), list(itertools.combinations(ALL_PATTERNS, 2)))
def test_may_overlap_never_misses_a_shared_model(a: str, b: str) -> None:
    pa, pb = p(a), p(b)
    shared = [m for m in SAMPLE_MODELS if pa.matches(m) and pb.matches(m)]
    if shared:
        assert may_overlap(pa, pb), f"{a!r} and {b!r} both match {shared}"


# --- RE2: linear time, bounded, and all of a config's regexes in one set ----------------------

@pytest.mark.parametrize("source", ["re:(a+)+b", "re:(a|aa)*c", "re:(.*a){12}"])
def test_regexes_that_backtrack_in_python_match_in_linear_time(source: str) -> None:
    """Python's `re` takes exponential time on these with a long near-miss; RE2 does not
    backtrack, so this returns at once (the test would time out otherwise)."""
    assert not compile_pattern(source).matches("a" * 50_000 + "!")


@pytest.mark.parametrize(("source", "says"), [
    ("re:(a)\\1", "back-references or look-around"),
    ("re:(?=a)a", "back-references or look-around"),
    ("re:" + "a" * 600, "at most 512"),
    ("re:a{1001}", "repetitions"),
])
def test_what_re2_cannot_do_is_a_pattern_error(source: str, says: str) -> None:
    with pytest.raises(PatternError, match=says):
        compile_pattern(source)


@given(st.lists(st.sampled_from(["a+", "b|ab", "[ab]{2}", "x.*", "(ab)*", "a?b?"]),
                min_size=1, max_size=6),
       st.text(alphabet="abx", max_size=5))
def test_a_regex_set_matches_as_its_patterns_do(bodies: list[str], model: str) -> None:
    patterns = [compile_pattern("re:" + body) for body in bodies]
    expected = [i for i, p in enumerate(patterns) if p.matches(model)]
    assert sorted(RegexSet(patterns).matching(model)) == expected


def test_a_regex_set_too_large_for_one_program_matches_one_by_one() -> None:
    patterns = [compile_pattern(f"re:.{{1,1000}}-{i}-") for i in range(100)]
    regexes = RegexSet(patterns)
    assert not regexes.one_pass
    assert regexes.matching("x" * 10 + "-42-") == [42]
    assert regexes.matching("zzz") == []
    assert RegexSet(patterns[:10]).one_pass
