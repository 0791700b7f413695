"""Compatibility modules between clients and an OpenAI-compatible provider.

Aspects: a preset's request rules reach the upstream (rename, clamp), custom rules (drop,
default) apply after the preset, reply rules rewrite whole replies and streams event by event
(reasoning moved to reasoning_content, finish reasons mapped), Anthropic clients pass through the
llmswitch and then the rules, and bad presets or misplaced modules are rejected before serving.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy import route, running_proxy, write_resources
from vpipe_api.errors import ConfigInvalid
from vpipe_api.loading import parse_resources
from vpipe_api.render import render
from vpipe_proxy.server import ProxyServer

HELLO = [{"role": "user", "content": "hello"}]


def compat_pipeline(upstream_url: str, compatibility: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "vpipe.io/v1alpha1", "kind": "Pipeline", "metadata": {"name": "glm"},
            "spec": {"modules": [
                {"type": "compatibility", "name": "quirks", "compatibility": compatibility},
                {"type": "provider", "name": "upstream",
                 "provider": {"family": "openai-compatible", "baseUrl": upstream_url}}]}}


@pytest.fixture
async def proxy(config_dir: Path, upstream_url: str) -> AsyncIterator[ProxyServer]:
    write_resources(config_dir, [
        compat_pipeline(upstream_url, {"preset": "glm", "rules": [
            {"op": "drop", "field": "seed"},
            {"op": "default", "field": "stream_options.include_usage", "value": "true"},
            {"op": "moveReasoning", "field": "reasoning_content", "to": "thinking_text"},
            {"op": "mapFinishReason", "value": "stop", "to": "length"},
        ]}),
        route("all", ["*"], "glm"),
    ])
    async with running_proxy(config_dir) as server:
        yield server


async def test_request_rules_reach_the_upstream(proxy: ProxyServer, fake: FakeUpstream) -> None:
    async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0) as client:
        await client.chat.completions.create(model="plain", messages=HELLO, temperature=1.7,
                                             max_completion_tokens=99, seed=3)
    body = fake.requests[-1].body
    assert body["temperature"] == 1  # glm preset clamps to [0, 1]
    assert body["max_tokens"] == 99 and "max_completion_tokens" not in body
    assert "seed" not in body
    assert body["stream_options"] == {"include_usage": True}


async def test_reply_rules_whole_and_streamed(proxy: ProxyServer) -> None:
    async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0) as client:
        raw = await client.chat.completions.with_raw_response.create(model="reasoning",
                                                                     messages=HELLO)
        whole = raw.parse()
        stream = await client.chat.completions.create(model="reasoning", messages=HELLO,
                                                      stream=True)
        thinking, finish = "", None
        async for chunk in stream:
            for choice in chunk.choices:
                thinking += getattr(choice.delta, "thinking_text", None) or ""
                finish = choice.finish_reason or finish
    message = whole.choices[0].message
    assert getattr(message, "thinking_text", None) == "Thinking."
    assert whole.choices[0].finish_reason == "length"
    assert thinking == "Thinking."
    assert finish == "length"


async def test_anthropic_clients_go_through_switch_then_rules(proxy: ProxyServer,
                                                              fake: FakeUpstream) -> None:
    async with AsyncAnthropic(base_url=proxy.url, api_key="x", max_retries=0) as client:
        await client.messages.create(model="plain", max_tokens=10, messages=HELLO,
                                     extra_body={"temperature": 0.9})
    assert fake.requests[-1].body["temperature"] == 0.9
    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}


def test_unknown_preset_and_misplaced_module_are_rejected() -> None:
    docs = [compat_pipeline("http://127.0.0.1:1/v1", {"preset": "nope"}),
            route("r", ["m"], "glm")]
    with pytest.raises(ConfigInvalid) as caught:
        resources = parse_resources(docs)
        render(resources.pipelines, resources.routes)
    (issue,) = caught.value.issues
    assert issue.field == "spec.modules[0].compatibility.preset"
    assert "known presets: azure-openai, deepseek" in issue.message
    anthropic = compat_pipeline("http://127.0.0.1:1/v1", {"preset": "glm"})
    anthropic["spec"]["modules"][1]["provider"] = {
        "family": "anthropic", "baseUrl": "http://127.0.0.1:1/v1",
        "credentials": {"secretRef": {"name": "a"}}}
    with pytest.raises(ConfigInvalid) as caught:
        resources = parse_resources([anthropic, route("r", ["m"], "glm")])
        render(resources.pipelines, resources.routes)
    assert "provider speaks anthropic-messages" in str(caught.value)


def test_rule_needs_its_fields() -> None:
    with pytest.raises(ConfigInvalid, match="op clamp needs min, max or both"):
        parse_resources([compat_pipeline("http://x/v1", {"rules": [
            {"op": "clamp", "field": "temperature"}]})])
    with pytest.raises(ConfigInvalid, match="is not JSON"):
        parse_resources([compat_pipeline("http://x/v1", {"rules": [
            {"op": "default", "field": "tone", "value": "friendly"}]})])
