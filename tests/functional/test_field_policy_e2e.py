"""The field policy through a running proxy, with the official SDKs as clients.

Aspects: a hint the provider has no use for is left out of the upstream request and named in the
reply's x-vpipe-dropped header (whole and streamed replies; both steps of a two-step pair) and
counted in vpipe_dropped_fields_total{pair, field}; a Pipeline with hints: refuse answers 400 in
the client's protocol naming the field, and the upstream is never called; server-side tools are
dropped, function tools still reach the provider; a request with nothing to drop has no header;
a compatibility clamp caps Claude-sized max_tokens as an integer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy import pipeline, route, running_proxy, write_resources
from vpipe_proxy.server import ProxyServer

HELLO: list[Any] = [{"role": "user", "content": "hello"}]
FUNCTION = {"type": "function", "name": "read_file", "parameters": {"type": "object"}}


@pytest.fixture
async def proxy(config_dir: Path, upstream_url: str) -> AsyncIterator[ProxyServer]:
    chat = {"family": "openai-compatible", "baseUrl": upstream_url}
    strict = pipeline("strict", chat)
    strict["spec"]["hints"] = "refuse"
    clamped = pipeline("clamped", chat)
    clamped["spec"]["modules"].insert(0, {"type": "compatibility", "compatibility": {
        "rules": [{"op": "clamp", "field": "max_tokens", "max": 8192}]}})
    write_resources(config_dir, [
        pipeline("chat", chat), strict, clamped,
        pipeline("claude", {"family": "anthropic", "baseUrl": upstream_url,
                            "credentials": {"secretRef": {"name": "a", "key": "k"}}}),
        route("strict", ["strict-*"], "strict", priority=10),
        route("clamped", ["clamped-*"], "clamped", priority=10),
        route("claude", ["claude-*"], "claude", priority=10,
              match={"protocols": ["openai-responses"]}),
        route("chat", ["*"], "chat"),
    ])
    async with running_proxy(config_dir, environ={"VPIPE_SECRET_A_K": "sk-a"}) as server:
        yield server


@pytest.fixture
async def ant(proxy: ProxyServer) -> AsyncIterator[AsyncAnthropic]:
    async with AsyncAnthropic(base_url=proxy.url, api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture
async def oai(proxy: ProxyServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0) as c:
        yield c


def _dropped_total(proxy: ProxyServer, pair: str, field: str) -> float:
    for metric in proxy.metrics.registry.collect():
        if metric.name == "vpipe_dropped_fields":
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels == {"pair": pair,
                                                                        "field": field}:
                    return sample.value
    return 0.0


HINTS: dict[str, Any] = {
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "extra_body": {"context_management": {"edits": [{"type": "clear_thinking_20251015"}]}},
}


async def test_anthropic_hints_are_dropped_and_named(ant: AsyncAnthropic, fake: FakeUpstream,
                                                     proxy: ProxyServer) -> None:
    raw = await ant.messages.with_raw_response.create(model="plain", max_tokens=20,
                                                      messages=HELLO, **HINTS)
    assert raw.headers["x-vpipe-dropped"] == "context_management, system[].cache_control"
    assert (await raw.parse()).content[0].text == "fake says: hello"  # type: ignore[union-attr]
    sent = fake.requests[-1].body
    assert "context_management" not in sent
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    pair = "anthropic-messages->openai-chat"
    assert _dropped_total(proxy, pair, "context_management") == 1
    async with ant.messages.with_streaming_response.create(
            model="plain", max_tokens=20, messages=HELLO, stream=True, **HINTS) as stream:
        assert stream.headers["x-vpipe-dropped"] == "context_management, system[].cache_control"
        text = "".join([line async for line in stream.iter_lines()])
    assert "message_stop" in text
    assert _dropped_total(proxy, pair, "system[].cache_control") == 2


async def test_nothing_dropped_means_no_header(ant: AsyncAnthropic) -> None:
    raw = await ant.messages.with_raw_response.create(model="plain", max_tokens=20,
                                                      messages=HELLO)
    assert "x-vpipe-dropped" not in raw.headers


async def test_hints_refuse_is_a_400_in_the_clients_shape(ant: AsyncAnthropic, oai: AsyncOpenAI,
                                                          fake: FakeUpstream) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await ant.messages.create(model="strict-1", max_tokens=20, messages=HELLO, **HINTS)
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "'context_management' is a hint" in caught.value.message
    assert "pipeline 'strict' refuses hints (spec.hints: refuse)" in caught.value.message
    with pytest.raises(openai.BadRequestError) as error:
        await oai.responses.create(model="strict-1", input="hi",
                                   include=["reasoning.encrypted_content"])
    assert error.value.body["param"] == "include"  # type: ignore[index]
    assert fake.requests == []


async def test_server_tools_are_dropped_function_tools_kept(oai: AsyncOpenAI,
                                                            fake: FakeUpstream) -> None:
    raw = await oai.responses.with_raw_response.create(
        model="plain", input="hi", tools=[FUNCTION, {"type": "web_search"}],
        include=["reasoning.encrypted_content"], prompt_cache_key="k1", store=False,
        reasoning={"effort": "low", "summary": "auto"})
    assert raw.headers["x-vpipe-dropped"] == "include, reasoning.summary, tools[web_search]"
    sent = fake.requests[-1].body
    assert [t["function"]["name"] for t in sent["tools"]] == ["read_file"]
    assert sent["prompt_cache_key"] == "k1"
    assert sent["reasoning_effort"] == "low"


async def test_two_steps_name_both_steps_drops(oai: AsyncOpenAI, fake: FakeUpstream,
                                               proxy: ProxyServer) -> None:
    """Responses -> chat -> Anthropic: the second step drops what the first one mapped."""
    raw = await oai.responses.with_raw_response.create(
        model="claude-x", input="hello", prompt_cache_key="k1", metadata={"a": "b"})
    assert raw.headers["x-vpipe-dropped"] == "metadata, prompt_cache_key"
    assert fake.requests[-1].path == "/v1/messages"
    assert "prompt_cache_key" not in fake.requests[-1].body
    assert _dropped_total(proxy, "openai-responses->anthropic-messages", "prompt_cache_key") == 1


async def test_a_declared_clamp_caps_max_tokens(ant: AsyncAnthropic, fake: FakeUpstream) -> None:
    await ant.messages.create(model="clamped-1", max_tokens=128000, messages=HELLO, timeout=30)
    assert fake.requests[-1].body["max_tokens"] == 8192
    assert isinstance(fake.requests[-1].body["max_tokens"], int)
