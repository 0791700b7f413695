"""Bad client input gets the right status and a message that says what to fix.

Aspects: invalid JSON, non-object bodies, missing / non-string / empty model, wrong field types,
oversized bodies (with and without Content-Length), unknown models (404 naming the model and
what the routes accept), near-miss routes explained, unknown endpoints; plus /v1/models,
embeddings and front-door path prefixes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from tests.support.proxy import pipeline, route, running_proxy, write_resources
from vpipe_proxy.server import ProxyServer


@pytest.fixture
async def proxy(config_dir: Path) -> AsyncIterator[ProxyServer]:
    write_resources(config_dir, [
        pipeline("mock-v1", {"family": "mock"}),
        route("exact", ["gpt-4o-mini"], "mock-v1", priority=10),
        route("globs", ["mock-*", "text-embedding-*"], "mock-v1"),
        route("gold", ["team/*"], "mock-v1",
              match={"pathPrefix": "/team-a", "headers": {"x-tenant": "gold"},
                     "protocols": ["openai-chat"]}),
    ])
    async with running_proxy(config_dir, max_body_bytes=64 * 1024) as server:
        yield server


async def post(server: ProxyServer, path: str, data: bytes | str,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(
        server.url + path, data=data,
        headers={"Content-Type": "application/json", **(headers or {})},
    ) as response:
        return response.status, await response.json()


CHAT = "/v1/chat/completions"


@pytest.mark.parametrize(("body", "status", "code", "words"), [
    ("{not json", 400, "invalid_json", "not valid JSON"),
    ("", 400, "invalid_request", "empty"),
    ("[1, 2]", 400, "invalid_request", "must be a JSON object"),
    ('{"messages": [{"role": "user", "content": "x"}]}', 400, "missing_model", "'model' is required"),
    ('{"model": 42, "messages": []}', 400, "invalid_model", "non-empty string, got 42"),
    ('{"model": " ", "messages": []}', 400, "invalid_model", "non-empty string"),
    ('{"model": "mock-a", "messages": "hi"}', 400, "invalid_request", "'messages' must be"),
    ('{"model": "mock-a", "messages": [{"content": "x"}]}', 400, "invalid_request", "messages[0]"),
    ('{"model": "mock-a", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
     400, "invalid_request", "'stream' must be"),
])
async def test_bad_chat_bodies(proxy: ProxyServer, body: str, status: int, code: str,
                               words: str) -> None:
    got_status, payload = await post(proxy, CHAT, body)
    assert got_status == status
    assert payload["error"]["code"] == code
    assert payload["error"]["type"] == "invalid_request_error"
    assert words in payload["error"]["message"]


async def test_oversized_body_is_413(proxy: ProxyServer) -> None:
    big = '{"model": "mock-a", "messages": [{"role": "user", "content": "' + "x" * 70_000 + '"}]}'
    status, payload = await post(proxy, CHAT, big)
    assert status == 413
    assert "65536" in payload["error"]["message"]


async def test_oversized_chunked_body_is_413(proxy: ProxyServer) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 8192

    async with aiohttp.ClientSession() as session, session.post(
        proxy.url + CHAT, data=chunks(), headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 413
        assert "VPIPE_MAX_BODY_BYTES" in (await response.json())["error"]["message"]


async def test_unknown_model_is_404_naming_model_and_patterns(proxy: ProxyServer) -> None:
    async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(
                model="claude-x", messages=[{"role": "user", "content": "hi"}])
    message = caught.value.message
    assert "claude-x" in message
    assert "gpt-4o-mini" in message and "mock-*" in message


async def test_near_miss_route_says_what_it_needs(proxy: ProxyServer) -> None:
    status, payload = await post(
        proxy, "/team-a" + CHAT,
        '{"model": "team/x", "messages": [{"role": "user", "content": "x"}]}')
    assert status == 404
    assert "route 'gold' needs header x-tenant: gold" in payload["error"]["message"]


async def test_path_prefix_and_header_route(proxy: ProxyServer) -> None:
    status, payload = await post(
        proxy, "/team-a" + CHAT,
        '{"model": "team/x", "messages": [{"role": "user", "content": "x"}]}',
        headers={"x-tenant": "gold"})
    assert status == 200
    assert payload["choices"][0]["message"]["content"].startswith("Mock reply from team/x")


async def test_unknown_endpoint_is_404_listing_endpoints(proxy: ProxyServer) -> None:
    status, payload = await post(proxy, "/v1/completions", "{}")
    assert status == 404
    assert "/v1/chat/completions" in payload["error"]["message"]


async def test_wrong_method_is_405(proxy: ProxyServer) -> None:
    async with aiohttp.ClientSession() as session, session.get(proxy.url + CHAT) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"
        assert "takes POST, not GET" in (await response.json())["error"]["message"]


async def test_models_lists_exact_names_and_patterns(proxy: ProxyServer) -> None:
    async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0) as client:
        models = await client.models.list()
    assert [m.id for m in models.data] == ["gpt-4o-mini"]
    async with aiohttp.ClientSession() as session, session.get(proxy.url + "/v1/models") as r:
        patterns = {p["pattern"] for p in (await r.json())["patterns"]}
    assert patterns == {"mock-*", "text-embedding-*", "team/*"}


async def test_embeddings_through_the_sdk(proxy: ProxyServer) -> None:
    async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0) as client:
        result = await client.embeddings.create(model="text-embedding-3-small",
                                                input=["a", "b"], dimensions=8)
        again = await client.embeddings.create(model="text-embedding-3-small", input="a",
                                               dimensions=8, encoding_format="float")
    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert again.data[0].embedding == pytest.approx(result.data[0].embedding, abs=1e-6)


async def test_embeddings_without_input_is_400(proxy: ProxyServer) -> None:
    status, payload = await post(proxy, "/v1/embeddings", '{"model": "text-embedding-3-small"}')
    assert status == 400
    assert payload["error"]["param"] == "input"
