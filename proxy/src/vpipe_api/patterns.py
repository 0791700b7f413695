"""Model-name patterns: exact names, globs and `re:` regular expressions.

Shared by validation (which reports bad patterns) and the proxy's router (which compiles them
once per config). Matching is case-sensitive and always against the whole model name.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

REGEX_PREFIX = "re:"
_GLOB_CHARS = frozenset("*?[")


class PatternError(ValueError):
    """A model pattern that cannot be compiled; the message says why and how to write it."""


@dataclass(frozen=True)
class ModelPattern:
    """A compiled model pattern."""

    source: str
    kind: Literal["exact", "glob", "regex"]
    regex: re.Pattern[str] | None  # None for exact names

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
    if source.startswith(REGEX_PREFIX):
        expression = source[len(REGEX_PREFIX):]
        if not expression:
            raise PatternError("model pattern 're:' has no regular expression after the prefix")
        try:
            return ModelPattern(source, "regex", re.compile(expression))
        except re.error as e:
            raise PatternError(
                f"model pattern {source!r} is not a valid regular expression: {e}"
            ) from e
    if not _GLOB_CHARS.intersection(source):
        return ModelPattern(source, "exact", None)
    if _has_unclosed_class(source):
        raise PatternError(
            f"model glob {source!r} has an unclosed '[' character class; close it, or use "
            "'re:' for a regular expression"
        )
    return ModelPattern(source, "glob", re.compile(fnmatch.translate(source)))


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
