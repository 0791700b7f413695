"""Claude Code and Codex CLI, the real binaries, through a real proxy to each provider family.

Aspects: each agent runs a two-turn task against a fake upstream of each protocol (OpenAI chat,
Anthropic Messages, OpenAI Responses), reached through vpipe by a path prefix: the upstream
answers the first turn with a streamed tool call whose JSON arguments arrive in fragments (read
a file in the agent's work dir), the agent runs the tool and sends its result, the upstream
answers with text quoting that result, and the test finds the file's secret in the agent's
final output. Usage (both turns' tokens), stop reasons and the tool run survive every pair. The
agent's own model names (claude-opus-5-5, gpt-5-codex) reach the upstream through modelMap's
'*' default; hints the provider has no use for are counted as dropped, and refused with a 400
the user reads when the Pipeline says hints: refuse. Neither agent reaches for the internet: a
trap proxy in HTTPS_PROXY sees no connection. examples/claude-code and examples/codex, pointed
at the fake, serve both agents as written. Skipped, saying why, when the agents are not
installed (hack/lib/agents.sh).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.agents import agents, capture
from tests.support.agent_script import USAGE_IN, USAGE_OUT
from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy import pipeline, route, running_proxy, write_resources
from vpipe_proxy.server import ProxyServer

SECRET = "vpipe-secret-4242"
# path prefix -> the provider protocol behind it
PROVIDERS = {"chat": "openai-chat", "anthropic": "anthropic-messages",
             "responses": "openai-responses"}


@pytest.fixture
async def proxy(config_dir: Path, upstream_url: str) -> AsyncIterator[ProxyServer]:
    docs = []
    for prefix, protocol in PROVIDERS.items():
        provider = {"family": "openai-compatible", "protocol": protocol, "baseUrl": upstream_url,
                    "modelMap": {"*": "agent"}}
        if protocol == "anthropic-messages":
            provider = {"family": "anthropic", "baseUrl": upstream_url, "modelMap": {"*": "agent"},
                        "credentials": {"secretRef": {"name": "anthropic", "key": "api-key"}}}
        docs += [pipeline(f"to-{prefix}", provider),
                 route(f"via-{prefix}", ["*"], f"to-{prefix}", match={"pathPrefix": f"/{prefix}"})]
    strict = pipeline("strict", {"family": "openai-compatible", "baseUrl": upstream_url,
                                 "modelMap": {"*": "agent"}})
    strict["spec"]["hints"] = "refuse"
    docs += [strict, route("via-strict", ["*"], "strict", match={"pathPrefix": "/strict"})]
    write_resources(config_dir, docs)
    environ = {"VPIPE_SECRET_ANTHROPIC_API_KEY": "sk-ant-upstream"}
    async with running_proxy(config_dir, environ=environ, warm_connections=0) as server:
        yield server


@pytest.fixture
async def trap() -> AsyncIterator[agents.Trap]:
    async with agents.Trap() as proxy_trap:
        yield proxy_trap
    assert proxy_trap.seen == [], "an agent tried to reach the internet"


@pytest.fixture
def workdir(tmp_path: Path, fake: FakeUpstream) -> Path:
    directory = tmp_path / "work"
    directory.mkdir()
    notes = directory / "notes.txt"
    notes.write_text(f"The secret is {SECRET}.\n")
    fake.agent_calls = {"Read": {"file_path": str(notes)},
                        "exec_command": {"cmd": "cat notes.txt"}}
    return directory


def _round_trip(fake: FakeUpstream, protocol: str) -> None:
    """The upstream got the first turn, then the second carrying the tool result, streamed."""
    turns = [s for s in fake.requests if s.body.get("model") == "agent"]
    assert len(turns) >= 2, [s.path for s in fake.requests]
    assert all(s.body.get("stream") for s in turns)
    path = {"openai-chat": "/v1/chat/completions", "anthropic-messages": "/v1/messages",
            "openai-responses": "/v1/responses"}[protocol]
    assert {s.path for s in turns} == {path}


def _dropped(proxy: ProxyServer, client: str, prefix: str) -> set[str]:
    """Fields counted in vpipe_dropped_fields_total for this pair."""
    pair = f"{client}->{PROVIDERS[prefix]}"
    return {s.labels["field"] for metric in proxy.metrics.registry.collect()
            if metric.name == "vpipe_dropped_fields" for s in metric.samples
            if s.name.endswith("_total") and s.labels["pair"] == pair and s.value > 0}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("prefix", list(PROVIDERS))
async def test_claude_code_two_turn_task(proxy: ProxyServer, fake: FakeUpstream, workdir: Path,
                                         tmp_path: Path, trap: agents.Trap, prefix: str) -> None:
    result = await agents.claude(f"{proxy.url}/{prefix}", "What does notes.txt say?", workdir,
                                 tmp_path / "home", trap)
    assert result.get("is_error") is False, result
    assert SECRET in str(result.get("result")), result
    # Usage and stop reasons survived both turns' conversion.
    usage = result["usage"]
    assert isinstance(usage, dict)
    assert (usage["input_tokens"], usage["output_tokens"]) == (2 * USAGE_IN, 2 * USAGE_OUT)
    assert result["stop_reason"] == "end_turn"
    assert result["num_turns"] == 2
    _round_trip(fake, PROVIDERS[prefix])
    dropped = _dropped(proxy, "anthropic-messages", prefix)
    if prefix == "anthropic":  # passed through as sent, beta flags included
        assert dropped == set()
        assert "context-management" in fake.requests[-1].headers["anthropic-beta"]
        capture.save(f"claude-code-{agents.CLAUDE_CODE_VERSION}", fake.requests,
                     "claude-opus-5-5", tmp_path)
    else:
        assert {"context_management", "system[].cache_control", "thinking.display"} <= dropped


@pytest.mark.timeout(120)
@pytest.mark.parametrize("prefix", list(PROVIDERS))
async def test_codex_two_turn_task(proxy: ProxyServer, fake: FakeUpstream, workdir: Path,
                                   tmp_path: Path, trap: agents.Trap, prefix: str) -> None:
    answer, events = await agents.codex(f"{proxy.url}/{prefix}/v1", "What does notes.txt say?",
                                        workdir, tmp_path / "home", trap)
    assert SECRET in answer
    commands = [e["item"] for e in events if e.get("type") == "item.completed"
                and e["item"].get("type") == "command_execution"]
    assert [(c["command"].endswith("'cat notes.txt'"), c["exit_code"]) for c in commands] == \
        [(True, 0)]
    (usage,) = [e["usage"] for e in events if e.get("type") == "turn.completed"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (2 * USAGE_IN, 2 * USAGE_OUT)
    _round_trip(fake, PROVIDERS[prefix])
    dropped = _dropped(proxy, "openai-responses", prefix)
    if prefix == "responses":
        assert dropped == set()
        capture.save(f"codex-{agents.CODEX_VERSION}", fake.requests, "gpt-5-codex", tmp_path)
    else:
        assert {"include", "client_metadata", "tools[web_search]", "tools[namespace]",
                "reasoning.summary"} <= dropped


@pytest.mark.timeout(60)
async def test_claude_code_shows_the_refusal_of_a_strict_pipeline(
        proxy: ProxyServer, fake: FakeUpstream, workdir: Path, tmp_path: Path,
        trap: agents.Trap) -> None:
    """hints: refuse: Claude Code's first hint is a 400 whose message the user reads."""
    result = await agents.claude(f"{proxy.url}/strict", "What does notes.txt say?", workdir,
                                 tmp_path / "home", trap, ok=False)
    assert result.get("is_error") is True
    assert result.get("api_error_status") == 400
    assert "pipeline 'strict' refuses hints (spec.hints: refuse)" in str(result.get("result"))
    assert fake.requests == []


def _example(name: str, upstream_url: str) -> list[dict[str, Any]]:
    """An examples/ folder's resources, its provider pointed at the fake upstream."""
    docs = list(yaml.safe_load_all((agents.ROOT / "examples" / name / "deepseek.yaml").read_text()))
    for doc in docs:
        for module in doc["spec"].get("modules", []):
            if module["type"] == "provider":
                module["provider"]["baseUrl"] = upstream_url
    return docs


@pytest.mark.timeout(120)
async def test_the_examples_serve_both_agents(config_dir: Path, upstream_url: str,
                                              fake: FakeUpstream, workdir: Path,
                                              tmp_path: Path, trap: agents.Trap) -> None:
    """examples/claude-code and examples/codex as a new user runs them: this month's model
    names reach DeepSeek's models through the glob modelMap, Claude's max_tokens clamped."""
    fake.agent_models = {"deepseek-reasoner", "deepseek-chat"}
    write_resources(config_dir, _example("claude-code", upstream_url)
                    + _example("codex", upstream_url))
    environ = {"VPIPE_SECRET_DEEPSEEK_API_KEY": "sk-deepseek-test"}
    async with running_proxy(config_dir, environ=environ, warm_connections=0) as server:
        result = await agents.claude(server.url, "What does notes.txt say?", workdir,
                                     tmp_path / "claude", trap)
        assert SECRET in str(result.get("result")), result
        answer, _ = await agents.codex(server.url + "/v1", "What does notes.txt say?", workdir,
                                       tmp_path / "codex", trap)
        assert SECRET in answer
    claude_turns, codex_turns = fake.requests[:2], fake.requests[2:]
    assert [s.body["model"] for s in claude_turns] == ["deepseek-reasoner"] * 2
    assert [s.body["max_tokens"] for s in claude_turns] == [8192] * 2
    assert [s.body["model"] for s in codex_turns] == ["deepseek-chat"] * 2
    assert all(s.path == "/v1/chat/completions" for s in fake.requests)
    assert all(s.headers["Authorization"] == "Bearer sk-deepseek-test" for s in fake.requests)
