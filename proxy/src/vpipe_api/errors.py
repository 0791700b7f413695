"""The exception hierarchy of `vpipe_api`.

Every error names the resource and field at fault and says how to fix it. Validation never stops
at the first problem: `ConfigInvalid` carries all of them so a user fixes everything in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class VpipeApiError(Exception):
    """Root of every error raised by `vpipe_api`."""


@dataclass(frozen=True)
class Issue:
    """One problem found in the resources, located precisely enough to fix it."""

    resource: str  # "Route/team-a/glm", or a file path when the resource could not be parsed
    field: str  # dotted path inside the resource, e.g. "spec.match.models[0]"
    message: str  # what is wrong and what to do

    def __str__(self) -> str:
        where = f"{self.resource} {self.field}" if self.field else self.resource
        return f"{where}: {self.message}"


class ConfigInvalid(VpipeApiError):
    """The resources cannot be rendered or served; `issues` lists every problem found."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = tuple(issues)
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        noun = "problem" if len(self.issues) == 1 else "problems"
        super().__init__(f"{len(self.issues)} {noun} in the vpipe resources:\n{lines}")


class DocumentError(VpipeApiError):
    """A rendered config document cannot be read (wrong version, corrupt, tampered revision)."""
