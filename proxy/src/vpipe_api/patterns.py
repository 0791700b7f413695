"""Model-name patterns: exact names, globs and `re:` regular expressions.

Shared by validation (which reports bad patterns) and the proxy's router (which compiles them
once per config), so a pattern that validates is one the router builds. Matching is
case-sensitive and always against the whole model name.

Regexes use RE2 (`google-re2`): matching takes time linear in the model name whatever the
pattern, so a Route cannot make the router backtrack for seconds on a crafted model name.
RE2 has no back-references or look-around; a pattern using them is rejected at validation.
Patterns are at most MAX_PATTERN_LENGTH characters and each compiled regex at most
RE2_MAX_MEMORY bytes.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final, Literal, Protocol

import re2

REGEX_PREFIX = "re:"
MAX_PATTERN_LENGTH: Final = 512
RE2_MAX_MEMORY: Final = 1 << 20  # per compiled regex; RE2's default is 8 MiB
RE2_SET_MAX_MEMORY: Final = 32 << 20  # all of a config's regexes as one set (lazily used)
_GLOB_CHARS = frozenset("*?[")


class PatternError(ValueError):
    """A model pattern that cannot be compiled; the message says why and how to write it."""


class Matcher(Protocol):
    """What a compiled glob (Python `re`) or regex (RE2) offers the router."""

    def fullmatch(self, string: str) -> object | None: ...


@dataclass(frozen=True)
class ModelPattern:
    """A compiled model pattern."""

    source: str
    kind: Literal["exact", "glob", "regex"]
    regex: Matcher | None  # None for exact names

    def matches(self, model: str) -> bool:
        if self.regex is None:
            return model == self.source
        return self.regex.fullmatch(model) is not None

    @cached_property
    def literal_prefix(self) -> str:
        """Characters every match starts with (used to reason about overlaps)."""
        if self.kind == "exact":
            return self.source
        if self.kind == "glob":
            for i, char in enumerate(self.source):
                if char in _GLOB_CHARS:
                    return self.source[:i]
            return self.source
        return ""


def compile_pattern(source: str) -> ModelPattern:
    """Compile one pattern or raise `PatternError` saying what is wrong."""
    if not source or source != source.strip():
        raise PatternError(
            f"model pattern {source!r} is empty or has surrounding spaces; write the model name, "
            "a glob like 'gpt-4*', or 're:<regex>'"
        )
    if len(source) > MAX_PATTERN_LENGTH:
        raise PatternError(
            f"model pattern {source[:40]!r}... is {len(source)} characters long; at most "
            f"{MAX_PATTERN_LENGTH}: split it into several patterns"
        )
    if source.startswith(REGEX_PREFIX):
        expression = source[len(REGEX_PREFIX):]
        if not expression:
            raise PatternError("model pattern 're:' has no regular expression after the prefix")
        return ModelPattern(source, "regex", _compile_re2(source, expression))
    if not _GLOB_CHARS.intersection(source):
        return ModelPattern(source, "exact", None)
    if _has_unclosed_class(source):
        raise PatternError(
            f"model glob {source!r} has an unclosed '[' character class; close it, or use "
            "'re:' for a regular expression"
        )
    return ModelPattern(source, "glob", re.compile(fnmatch.translate(source)))


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.max_mem = RE2_MAX_MEMORY
    options.log_errors = False  # the error comes back as an exception; no stderr noise
    return options


_RE2_OPTIONS: Final = _re2_options()


def _compile_re2(source: str, expression: str) -> Matcher:
    try:
        compiled: Matcher = re2.compile(expression, _RE2_OPTIONS)
    except re2.error as e:
        reason = e.args[0].decode("utf-8", "replace") if e.args and isinstance(
            e.args[0], bytes) else str(e)
        raise PatternError(
            f"model pattern {source!r} is not a valid regular expression in RE2 syntax "
            f"({reason}); RE2 has no back-references or look-around, and bounds repetitions "
            "to 1000"
        ) from e
    return compiled


class RegexSet:
    """Every `re:` pattern of a config in one RE2 set: a model name is matched against all of
    them in one linear pass (~0.5 µs for 100 patterns, where matching them one by one through
    the RE2 binding costs ~1 µs each). A set too large for RE2_SET_MAX_MEMORY falls back to one
    by one, still linear."""

    def __init__(self, patterns: Sequence[ModelPattern]) -> None:
        self._patterns = tuple(patterns)
        self._set: Any = None
        if not self._patterns:
            return
        options = _re2_options()
        options.max_mem = RE2_SET_MAX_MEMORY
        candidate = re2.Set.FullMatchSet(options)
        try:
            for pattern in self._patterns:
                candidate.Add(pattern.source[len(REGEX_PREFIX):])
            candidate.Compile()
        except re2.error:
            return
        self._set = candidate

    @property
    def one_pass(self) -> bool:
        """Whether the patterns compiled into one set (else they match one by one)."""
        return self._set is not None

    def matching(self, model: str) -> list[int]:
        """Indices (in the order given) of the patterns that match the whole of `model`."""
        if self._set is None:
            return [i for i, pattern in enumerate(self._patterns) if pattern.matches(model)]
        found: list[int] | None = self._set.Match(model)
        return found or []


def may_overlap(a: ModelPattern, b: ModelPattern) -> bool:
    """Whether some model name could match both patterns (conservative: unsure means yes)."""
    if a.kind == "exact" and b.kind == "exact":
        return a.source == b.source
    if a.kind == "exact":
        return b.matches(a.source)
    if b.kind == "exact":
        return a.matches(b.source)
    if a.kind == "regex" or b.kind == "regex":
        return True
    pa, pb = a.literal_prefix, b.literal_prefix
    return pa.startswith(pb) or pb.startswith(pa)


def _has_unclosed_class(glob: str) -> bool:
    """fnmatch's rule: '[' opens a class closed by a later ']' ('[]...]' and '[!]...]' too)."""
    i, n = 0, len(glob)
    while i < n:
        if glob[i] == "[":
            j = i + 1
            if j < n and glob[j] == "!":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                return True
            i = j
        i += 1
    return False


class ModelMap:
    """A provider's `modelMap` compiled: client model name -> upstream model name.

    Keys are exact names, globs or `re:` expressions, like Route models. An exact key wins; else
    the most specific pattern (longest literal prefix, then longest key; `*` is the catch-all
    default). A name nothing matches is sent unchanged. Agents' model names change monthly, so
    a glob such as `claude-opus-*` keeps a working setup working when a new name appears.
    """

    def __init__(self, mapping: dict[str, str]) -> None:
        self._exact = {k: v for k, v in mapping.items() if compile_pattern(k).kind == "exact"}
        patterns = [compile_pattern(k) for k in mapping if k not in self._exact]
        patterns.sort(key=lambda p: (-len(p.literal_prefix), -len(p.source), p.source))
        self._patterns = [(p, mapping[p.source]) for p in patterns]

    def lookup(self, model: str) -> tuple[str, str | None]:
        """(upstream name, the key that matched or None when the name passes unchanged)."""
        target = self._exact.get(model)
        if target is not None:
            return target, model
        for pattern, target in self._patterns:
            if pattern.matches(model):
                return target, pattern.source
        return model, None
