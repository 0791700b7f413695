"""Status conditions of Pipelines and Routes: the reasons, how they are built, and when they change.

Pure: no clock (the caller passes `now`), no API. The rule that makes an unchanged reconcile write
nothing lives here: a condition keeps its `lastTransitionTime` while its `status` stays the same,
and `status_patch` returns None when the desired status equals the current one.
The condition shape follows `vpipe_api.status.Condition` (the CRD's status schema).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, NotRequired, TypedDict

from vpipe_api.errors import Issue

# Validated
VALID: Final = "Valid"
INVALID_SPEC: Final = "InvalidSpec"
PIPELINE_NOT_FOUND: Final = "PipelineNotFound"
# Ready
SERVED: Final = "Served"
PIPELINE_INVALID: Final = "PipelineInvalid"
PIPELINE_NOT_READY: Final = "PipelineNotReady"
SECRET_NOT_FOUND: Final = "SecretNotFound"
CONFIG_TOO_LARGE: Final = "ConfigTooLarge"
CONFIG_HELD: Final = "ConfigHeld"

OWNED: Final = ("Validated", "Ready")  # condition types this operator writes; others are kept
MAX_MESSAGE: Final = 2000  # characters; the rest is summarized as "(N more problems)"


class ConditionDict(TypedDict):
    """A condition as it travels on the wire (camelCase keys)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    observedGeneration: NotRequired[int]
    lastTransitionTime: str


def reason_for(issues: Sequence[Issue]) -> str:
    """PipelineNotFound when every problem is the `spec.pipeline` reference, else InvalidSpec."""
    if issues and all(issue.field == "spec.pipeline" for issue in issues):
        return PIPELINE_NOT_FOUND
    return INVALID_SPEC


def describe(issues: Sequence[Issue]) -> str:
    """One message for a condition: every problem with its field, capped in length."""
    parts = [issue_text(issue) for issue in issues]
    message = ""
    for index, part in enumerate(parts):
        candidate = f"{message}; {part}" if message else part
        if len(candidate) > MAX_MESSAGE:
            rest = len(parts) - index
            return f"{message}; ({rest} more problem{'s' if rest > 1 else ''})"
        message = candidate
    return message


def issue_text(issue: Issue) -> str:
    return f"{issue.field}: {issue.message}" if issue.field else issue.message


def condition(
    type_: str, ok: bool, reason: str, message: str, *, generation: int | None,
    previous: Mapping[str, Any] | None, now: str,
) -> ConditionDict:
    """A condition whose lastTransitionTime moves only when its status flips."""
    status: Literal["True", "False"] = "True" if ok else "False"
    since = now
    if previous is not None and previous.get("status") == status:
        since = str(previous.get("lastTransitionTime") or now)
    result = ConditionDict(type=type_, status=status, reason=reason, message=message,
                           lastTransitionTime=since)
    if generation is not None:
        result["observedGeneration"] = generation
    return result


def find(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for item in status.get("conditions") or []:
        if isinstance(item, Mapping) and item.get("type") == type_:
            return item
    return None


def changed(new: ConditionDict, previous: Mapping[str, Any] | None) -> bool:
    """Did the condition say something new (worth an Event)? Timestamps do not count."""
    if previous is None:
        return True
    return any(previous.get(key) != new[key] for key in ("status", "reason", "message"))


def status_patch(
    current: Mapping[str, Any], conditions: Sequence[ConditionDict],
    generation: int | None, revision: str | None, *, extra: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The merge patch of `status` that makes it say this, or None when it already does.

    `extra` adds members (a Route's `activeWeight`, `rollout`); None clears one, and a nested
    map's keys that the desired value lacks are cleared too (a merge patch would keep them).
    """
    others = [c for c in current.get("conditions") or []
              if not (isinstance(c, Mapping) and c.get("type") in OWNED)]
    desired: dict[str, Any] = {
        "conditions": [dict(c) for c in conditions] + others,
        "observedGeneration": generation,
        "configRevision": revision,
    }
    desired.update(extra or {})
    if all(current.get(key) == value for key, value in desired.items()):
        return None
    for key, value in (extra or {}).items():
        old = current.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            desired[key] = {**{k: None for k in old if k not in value}, **value}
    return desired
