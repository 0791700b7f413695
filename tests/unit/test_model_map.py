"""Provider modelMap with exact names, globs, regexes and a '*' default.

Aspects: an exact key beats any pattern; among patterns the longest literal prefix wins, so
'claude-opus-*' beats 'claude-*' beats '*' whatever order they were written in; 're:' keys work;
a name nothing matches passes unchanged; a malformed key is a validation issue at modelMap.
"""

from __future__ import annotations

import pytest

from vpipe_api.patterns import ModelMap
from vpipe_api.resolve import resolve_provider
from vpipe_api.resources import ProviderSpec

MAPPING = {"*": "default", "claude-*": "mid", "claude-opus-*": "big",
           "claude-opus-4-1": "exact", "re:gpt-[0-9]+-codex": "coder"}


@pytest.mark.parametrize(("model", "expected"), [
    ("claude-opus-4-1", ("exact", "claude-opus-4-1")),
    ("claude-opus-5-5", ("big", "claude-opus-*")),
    ("claude-haiku-4-5", ("mid", "claude-*")),
    ("gpt-5-codex", ("coder", "re:gpt-[0-9]+-codex")),
    ("anything", ("default", "*")),
])
def test_lookup(model: str, expected: tuple[str, str]) -> None:
    assert ModelMap(MAPPING).lookup(model) == expected
    assert ModelMap(dict(reversed(MAPPING.items()))).lookup(model) == expected


def test_unmatched_names_pass_unchanged() -> None:
    assert ModelMap({"claude-*": "x"}).lookup("gpt-4o") == ("gpt-4o", None)
    assert ModelMap({}).lookup("gpt-4o") == ("gpt-4o", None)


def test_malformed_key_is_an_issue() -> None:
    spec = ProviderSpec.model_validate({"family": "mock", "modelMap": {"claude-[": "x"}})
    config, issues = resolve_provider(spec, "Pipeline/default/p", "spec.modules[0].provider")
    assert config is None
    assert [i.field for i in issues] == ["spec.modules[0].provider.modelMap"]
    assert "unclosed '['" in issues[0].message
