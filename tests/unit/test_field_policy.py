"""The llmswitch field policy: complete against the SDKs, obeyed by the converters, documented.

Aspects: every request field, tool type and block/item type the installed `openai` and
`anthropic` packages define for a client protocol has an entry in that client's tables (a new
SDK field fails here until someone classifies it); each table's dropped fields are left out and
named, refused fields are a 400 naming them, unknown fields are refused, and `hints: refuse`
turns drops into refusals; the requests Claude Code and Codex CLI really sent
(tests/fixtures/agents) convert with exactly the expected drops, mid-conversation system and
developer messages kept in place, effort mapped; docs/agents/*.md hold the current tables.
"""

from __future__ import annotations

import copy
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic.types as anthropic_types
import anthropic.types.beta as anthropic_beta
import openai.types.chat as chat_types
import openai.types.responses as responses_types
import orjson
import pytest
from anthropic.types import message_create_params as anthropic_params
from anthropic.types.beta import message_create_params as anthropic_beta_params
from openai.types.chat import completion_create_params as chat_params
from openai.types.responses import response_create_params as responses_params

from vpipe_proxy.errors import ProxyError
from vpipe_proxy.llmswitch import (
    anthropic_openai,
    field_policy,
    openai_anthropic,
    openai_responses,
    responses_openai,
)
from vpipe_proxy.llmswitch.field_policy import DROPPED, REFUSED, PairPolicy, Screen, tool_kind
from vpipe_proxy.llmswitch.policy_docs import refresh

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "agents"

Convert = Callable[[dict[str, Any], Screen], dict[str, Any]]
PAIRS: list[tuple[PairPolicy, Convert, dict[str, Any]]] = [
    (field_policy.ANTHROPIC_TO_CHAT, anthropic_openai.request_to_openai,
     {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
    (field_policy.CHAT_TO_ANTHROPIC, openai_anthropic.request_to_anthropic,
     {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    (field_policy.RESPONSES_TO_CHAT, responses_openai.request_to_chat,
     {"model": "m", "input": "hi"}),
    (field_policy.CHAT_TO_RESPONSES, openai_responses.request_to_responses,
     {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
]
IDS = [f"{p.client}->{p.provider}" for p, _, _ in PAIRS]


def _keys(typed_dict: Any) -> set[str]:
    return set(typed_dict.__required_keys__ | typed_dict.__optional_keys__)


def _literals(union: Any, key: str = "type") -> set[str]:
    """The string literals of `key` across the members of a TypedDict union."""
    found: set[str] = set()
    for member in typing.get_args(union) or (union,):
        if typing.get_args(member) and not hasattr(member, "__annotations__"):
            found |= _literals(member, key)  # a union nested in the union
            continue
        annotation = getattr(member, "__annotations__", {}).get(key)
        for literal in re.findall(r"Literal\[([^\]]*)\]", str(annotation or "")):
            found.update(re.findall(r"['\"]([^'\"]+)['\"]", literal))
    return found


# --------------------------------------------------------------------------- complete vs the SDKs

def test_anthropic_request_fields_are_all_classified() -> None:
    fields = _keys(anthropic_params.MessageCreateParamsStreaming) | _keys(
        anthropic_beta_params.MessageCreateParamsStreaming)
    # Request options the SDK sends as headers or query, never in the body.
    fields -= {"extra_headers", "extra_query", "extra_body", "timeout"}
    assert fields - set(field_policy.ANTHROPIC_TO_CHAT.fields) == set()


def test_anthropic_tool_and_block_types_are_all_classified() -> None:
    tools = {tool_kind({"type": t}) for t in _literals(anthropic_types.ToolUnionParam)
             | _literals(anthropic_beta.BetaToolUnionParam)}
    assert {"custom", "web_search", "bash", "mcp_toolset"} <= tools  # the reading works
    assert tools - set(field_policy.ANTHROPIC_TO_CHAT.tools) == set()
    blocks = _literals(anthropic_types.ContentBlockParam)
    assert {"text", "tool_result", "document"} <= blocks
    assert blocks - set(field_policy.ANTHROPIC_TO_CHAT.blocks) == set()
    roles = {f"role: {r}" for r in _literals(anthropic_types.MessageParam, "role")}
    assert roles == {"role: user", "role: assistant", "role: system"}
    assert roles <= set(field_policy.ANTHROPIC_TO_CHAT.blocks)


@pytest.mark.parametrize("policy", [field_policy.CHAT_TO_ANTHROPIC,
                                    field_policy.CHAT_TO_RESPONSES], ids=str)
def test_chat_request_fields_and_types_are_all_classified(policy: PairPolicy) -> None:
    assert _keys(chat_params.CompletionCreateParamsStreaming) - set(policy.fields) == set()
    tools = _literals(chat_types.ChatCompletionToolUnionParam)
    assert tools == {"function", "custom"}
    assert tools - set(policy.tools) == set()
    roles = {f"role: {r}" for r in _literals(chat_types.ChatCompletionMessageParam, "role")}
    parts = _literals(chat_types.ChatCompletionContentPartParam)
    assert (roles | parts) - set(policy.blocks) == set()


def test_responses_request_fields_and_types_are_all_classified() -> None:
    policy = field_policy.RESPONSES_TO_CHAT
    assert _keys(responses_params.ResponseCreateParamsStreaming) - set(policy.fields) == set()
    tools = _literals(responses_types.ToolParam)
    assert {"function", "namespace", "web_search", "mcp"} <= tools
    assert tools - set(policy.tools) == set()
    items = _literals(responses_types.ResponseInputItemParam)
    assert {"message", "function_call_output", "reasoning"} <= items
    content = _literals(responses_types.ResponseInputContentParam)
    assert (items | content) - set(policy.blocks) == set()


# --------------------------------------------------------------------------- the converters obey

@pytest.mark.parametrize(("policy", "convert", "base"), PAIRS, ids=IDS)
def test_dropped_fields_are_left_out_and_named(policy: PairPolicy, convert: Convert,
                                               base: dict[str, Any]) -> None:
    dropped = [name for name, rule in policy.fields.items() if rule.action == DROPPED]
    assert dropped, "every pair has hints to drop"
    body = {**base, **{name: {"x": 1} for name in dropped}}
    screen = Screen(policy)
    out = convert(copy.deepcopy(body), screen)
    assert screen.dropped == dropped
    assert not set(dropped) & set(out), "a dropped field reached the provider"
    with pytest.raises(ProxyError) as caught:
        convert(copy.deepcopy(body), Screen(policy, strict=True, pipeline="p1"))
    assert caught.value.status == 400
    assert caught.value.param == dropped[0]
    assert "pipeline 'p1' refuses hints (spec.hints: refuse)" in caught.value.message


@pytest.mark.parametrize(("policy", "convert", "base"), PAIRS, ids=IDS)
def test_refused_and_unknown_fields_are_400_naming_them(policy: PairPolicy, convert: Convert,
                                                        base: dict[str, Any]) -> None:
    refused = [name for name, rule in policy.fields.items() if rule.action == REFUSED]
    for name in [*refused, "field_from_the_future"]:
        with pytest.raises(ProxyError) as caught:
            convert({**base, name: "x"}, Screen(policy))
        assert caught.value.status == 400
        assert caught.value.param == name
        assert f"'{name}' cannot be sent to this {policy.provider_label} provider" in \
            caught.value.message
        assert policy.fallback in caught.value.message


@pytest.mark.parametrize(("policy", "convert", "base"), PAIRS, ids=IDS)
def test_null_fields_are_not_set(policy: PairPolicy, convert: Convert,
                                 base: dict[str, Any]) -> None:
    """SDKs send null for "not set": neither refused nor reported as dropped."""
    names = [n for n, r in policy.fields.items() if r.action != "mapped"]
    screen = Screen(policy, strict=True)
    convert({**base, **dict.fromkeys(names)}, screen)
    assert screen.dropped == []


# --------------------------------------------------------------------------- real agent requests

def _fixture(name: str) -> list[dict[str, Any]]:
    data = orjson.loads((FIXTURES / name).read_bytes())
    return [r["body"] for r in data["requests"]]


def test_claude_code_request_to_a_chat_provider() -> None:
    first, second = _fixture("claude-code-2.1.332.json")
    screen = Screen(field_policy.ANTHROPIC_TO_CHAT)
    out = anthropic_openai.request_to_openai(second, screen)
    assert sorted(screen.dropped) == ["context_management", "messages[].content[].cache_control",
                                      "system[].cache_control", "thinking.display",
                                      "tools[].defer_loading"]
    roles = [m["role"] for m in out["messages"]]
    # The mid-conversation system message stays where Claude Code put it.
    assert roles == ["system", "user", "system", "assistant", "tool"]
    call = out["messages"][3]["tool_calls"][0]
    assert out["messages"][4]["tool_call_id"] == call["id"]
    assert out["reasoning_effort"] == second["output_config"]["effort"]
    assert out["max_tokens"] == 128000
    assert len(out["tools"]) == len(second["tools"])
    assert all(t["type"] == "function" for t in out["tools"])
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    with pytest.raises(ProxyError, match="'context_management' is a hint"):
        anthropic_openai.request_to_openai(first, Screen(field_policy.ANTHROPIC_TO_CHAT,
                                                         strict=True))


def test_codex_request_to_a_chat_provider() -> None:
    _, second = _fixture("codex-0.171.0.json")
    screen = Screen(field_policy.RESPONSES_TO_CHAT)
    out = responses_openai.request_to_chat(second, screen)
    assert sorted(screen.dropped) == ["client_metadata", "include", "reasoning.summary",
                                      "tools[namespace]", "tools[web_search]"]
    assert [m["role"] for m in out["messages"]] == ["system", "system", "user", "user",
                                                    "assistant", "tool"]
    assert out["prompt_cache_key"] == second["prompt_cache_key"]
    assert {t["function"]["name"] for t in out["tools"]} == {
        t["name"] for t in second["tools"] if t["type"] == "function"}
    assert "store" not in out and out["parallel_tool_calls"] is True


def test_codex_request_to_an_anthropic_provider_in_two_steps() -> None:
    _, second = _fixture("codex-0.171.0.json")
    chat = responses_openai.request_to_chat(second, Screen(field_policy.RESPONSES_TO_CHAT))
    screen = Screen(field_policy.CHAT_TO_ANTHROPIC)
    out = openai_anthropic.request_to_anthropic(chat, screen)
    assert screen.dropped == ["prompt_cache_key"]
    assert "You are a coding agent" in out["system"]
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][1]["content"][0]["type"] == "tool_use"
    assert out["messages"][2]["content"][0]["type"] == "tool_result"


def test_claude_code_request_to_a_responses_provider_in_two_steps() -> None:
    _, second = _fixture("claude-code-2.1.332.json")
    chat = anthropic_openai.request_to_openai(second, Screen(field_policy.ANTHROPIC_TO_CHAT))
    screen = Screen(field_policy.CHAT_TO_RESPONSES)
    out = openai_responses.request_to_responses(chat, screen)
    assert screen.dropped == []
    kinds = [i.get("type", i.get("role")) for i in out["input"]]
    assert kinds == ["system", "user", "system", "function_call", "function_call_output"]
    assert out["reasoning"] == {"effort": "medium"}


def test_chat_system_messages_after_the_first_turn_stay_in_place() -> None:
    out = openai_anthropic.request_to_anthropic({"model": "m", "messages": [
        {"role": "system", "content": "a"}, {"role": "user", "content": "u1"},
        {"role": "developer", "content": "b"}, {"role": "user", "content": "u2"}]})
    assert out["system"] == "a"
    assert out["messages"][1] == {"role": "system", "content": [{"type": "text", "text": "b"}]}


def test_effort_levels_map_across() -> None:
    body = {"model": "m", "max_tokens": 100000, "messages": [{"role": "user", "content": "hi"}]}
    for level in ("low", "medium", "high", "xhigh", "max"):
        out = anthropic_openai.request_to_openai({**body, "output_config": {"effort": level},
                                                  "thinking": {"type": "adaptive"}})
        assert out["reasoning_effort"] == level
    out = anthropic_openai.request_to_openai({**body, "thinking": {"type": "disabled"},
                                              "output_config": {"effort": "high"}})
    assert "reasoning_effort" not in out
    chat = {"model": "m", "max_tokens": 100000, "messages": [{"role": "user", "content": "hi"}]}
    out = openai_anthropic.request_to_anthropic({**chat, "reasoning_effort": "xhigh"})
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 32768}
    out = responses_openai.request_to_chat({"model": "m", "input": "hi",
                                            "reasoning": {"effort": "high", "summary": "auto"}})
    assert out["reasoning_effort"] == "high"


def test_a_tool_choice_among_dropped_tools_is_not_sent() -> None:
    out = responses_openai.request_to_chat({"model": "m", "input": "hi", "tool_choice": "auto",
                                            "parallel_tool_calls": True,
                                            "tools": [{"type": "web_search"}]})
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(out)


# --------------------------------------------------------------------------- docs in step

@pytest.mark.parametrize("page", sorted((ROOT / "docs" / "agents").glob("*.md")),
                         ids=lambda p: p.name)
def test_agent_docs_hold_the_current_tables(page: Path) -> None:
    text = page.read_text()
    assert "<!-- BEGIN field-policy" in text
    assert refresh(text) == text, f"{page} is stale: run hack/update-agent-docs.sh"
