"""Traffic assignment (pure): distribution, monotonic stickiness, stickiness keys.

Aspects: over 10,000 keys the canary share is within 2 points of the weight; raising the weight
only moves keys from V1 to V2; keys come from the configured header, then the user field
(OpenAI `user`, Anthropic `metadata.user_id`), then the conversation's opening, which stays the
same across turns.
"""

from __future__ import annotations

import pytest

from vpipe_proxy.settings import Settings, SettingsError
from vpipe_proxy.splitter import bucket, in_canary, sticky_key

KEYS = [f"user-{i}".encode() for i in range(10_000)]


@pytest.mark.parametrize("weight", [1, 5, 10, 25, 50, 75, 90, 99])
def test_share_is_within_two_points(weight: int) -> None:
    share = sum(in_canary(bucket("route", k), weight) for k in KEYS) / len(KEYS) * 100
    assert abs(share - weight) <= 2


def test_edges() -> None:
    assert not any(in_canary(bucket("r", k), 0) for k in KEYS[:1000])
    assert all(in_canary(bucket("r", k), 100) for k in KEYS[:1000])


def test_raising_the_weight_only_moves_keys_to_v2() -> None:
    previous: set[bytes] = set()
    for weight in range(0, 101, 5):
        current = {k for k in KEYS if in_canary(bucket("route", k), weight)}
        assert previous <= current
        previous = current


def test_routes_are_salted_apart() -> None:
    a = {k for k in KEYS if in_canary(bucket("a", k), 50)}
    b = {k for k in KEYS if in_canary(bucket("b", k), 50)}
    assert a != b


def test_key_precedence() -> None:
    body = {"user": "u1", "messages": [{"role": "user", "content": "hi"}]}
    assert sticky_key(body, {"x-user": "h1"}, "x-user") == b"h:h1"
    assert sticky_key(body, {}, "x-user") == b"u:u1"
    assert sticky_key({"metadata": {"user_id": "a1"}, "messages": []}, {}, None) == b"u:a1"
    assert sticky_key({"input": ["t"]}, {}, None) is not None  # a Responses conversation
    assert sticky_key({"instructions": "i", "input": "x"}, {}, None) == b'c:["i","x"]'
    assert sticky_key({"model": "text-embedding-3-small"}, {}, None) is None


def test_conversation_key_survives_later_turns() -> None:
    first = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q1"}]}
    later = {"messages": [*first["messages"], {"role": "assistant", "content": "a1"},
                          {"role": "user", "content": "q2"}]}
    other = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "x"}]}
    assert sticky_key(first, {}, None) == sticky_key(later, {}, None)
    assert sticky_key(first, {}, None) != sticky_key(other, {}, None)


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("0", False), ("Off", False)])
def test_boolean_settings(raw: str, value: bool) -> None:
    assert Settings.from_environ({"VPIPE_ALLOW_VERSION_OVERRIDE": raw}).allow_version_override \
        is value


def test_bad_boolean_setting_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="VPIPE_SHADOW_LOG_CONTENTS='maybe'"):
        Settings.from_environ({"VPIPE_SHADOW_LOG_CONTENTS": "maybe"})
