"""V1/V2 traffic shifting in the proxy: split, stickiness, forced version, shadow, zero loss.

Aspects: a split sends its share to the canary and every response names its version; a sticky
key (header, user, conversation) keeps its version across requests and turns; x-vpipe-version
forces a version unless disabled; shadow mode answers from V1, mirrors to V2 in the background,
records the comparison, counts a V2 error answer `failed` (still compared), drops copies beyond
the concurrency limit (streams: test_shadow_stream.py). Zero loss under load through a whole
rollout: test_rollout_under_load.py; Responses threads: test_threads.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.support.proxy import pipeline, route, running_proxy, write_resources
from vpipe_proxy.server import ProxyServer

CHAT = "/v1/chat/completions"


def resources(upstream_url: str, weight: int, mode: str = "split",
              header: str | None = "x-user") -> list[dict[str, Any]]:
    canary: dict[str, Any] = {"pipeline": "v2", "weight": weight, "mode": mode}
    if header:
        canary["stickiness"] = {"header": header}
    return [
        pipeline("v1", {"family": "mock"}),
        pipeline("v2", {"family": "openai-compatible", "baseUrl": upstream_url}),
        route("chat", ["*"], "v1", canary=canary),
    ]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def ask(session: aiohttp.ClientSession, server: ProxyServer, text: str = "hi",
              headers: dict[str, str] | None = None, **body: Any) -> tuple[str, dict[str, Any]]:
    payload = {"model": "m", "messages": [{"role": "user", "content": text}], **body}
    async with session.post(server.url + CHAT, json=payload, headers=headers or {}) as r:
        assert r.status == 200, await r.text()
        return r.headers["x-vpipe-version"], await r.json()


async def test_split_share_and_stickiness(config_dir: Path, upstream_url: str,
                                          session: aiohttp.ClientSession) -> None:
    write_resources(config_dir, resources(upstream_url, 30))
    async with running_proxy(config_dir) as server:
        first = {}
        for i in range(300):
            version, body = await ask(session, server, headers={"x-user": f"u{i}"})
            first[i] = version
            expected = "fake says" if version == "v2" else "Mock reply"
            assert body["choices"][0]["message"]["content"].startswith(expected)
        share = Counter(first.values())["v2"] / 300
        assert 0.2 < share < 0.4
        for i in range(0, 300, 10):
            assert (await ask(session, server, headers={"x-user": f"u{i}"}))[0] == first[i]
        text = server.metrics.exposition().decode()
        assert 'pipeline="v2",protocol="openai-chat",route="chat",status="200",version="v2"' \
            in text


async def test_conversation_keeps_its_version_across_turns(
    config_dir: Path, upstream_url: str, session: aiohttp.ClientSession
) -> None:
    write_resources(config_dir, resources(upstream_url, 50, header=None))
    async with running_proxy(config_dir) as server:
        for n in range(20):
            opening = [{"role": "user", "content": f"conversation {n}"}]
            version, _ = await ask(session, server, text=f"conversation {n}")
            for turn in range(3):
                messages = [*opening, {"role": "assistant", "content": "..."},
                            {"role": "user", "content": f"turn {turn}"}]
                async with session.post(server.url + CHAT,
                                        json={"model": "m", "messages": messages}) as r:
                    assert r.headers["x-vpipe-version"] == version


async def test_forced_version_and_its_switch(config_dir: Path, upstream_url: str,
                                             session: aiohttp.ClientSession) -> None:
    write_resources(config_dir, resources(upstream_url, 0))
    async with running_proxy(config_dir) as server:
        assert (await ask(session, server))[0] == "v1"
        version, body = await ask(session, server, headers={"x-vpipe-version": "v2"})
        assert version == "v2"
        assert body["choices"][0]["message"]["content"].startswith("fake says")
        async with session.post(server.url + CHAT, headers={"x-vpipe-version": "v3"},
                                json={"model": "m", "messages": [{"role": "user",
                                                                  "content": "x"}]}) as r:
            assert r.status == 400
            assert "must be v1 or v2" in (await r.json())["error"]["message"]
    async with running_proxy(config_dir, allow_version_override=False) as server:
        assert (await ask(session, server, headers={"x-vpipe-version": "v2"}))[0] == "v1"


async def wait_for(predicate: Any, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_shadow_answers_from_v1_and_compares(config_dir: Path, upstream_url: str,
                                                   session: aiohttp.ClientSession) -> None:
    write_resources(config_dir, resources(upstream_url, 100, mode="shadow"))
    async with running_proxy(config_dir) as server:
        version, body = await ask(session, server, text="compare me")
        assert version == "v1"
        assert body["choices"][0]["message"]["content"].startswith("Mock reply")

        def sent() -> bool:
            return 'vpipe_shadow_requests_total{result="sent",route="chat"} 1.0' in \
                server.metrics.exposition().decode()

        await wait_for(sent)
        text = server.metrics.exposition().decode()
        assert 'vpipe_shadow_match_total{aspect="status",match="true",route="chat"} 1.0' in text
        assert 'vpipe_shadow_text_similarity_count{route="chat"} 1.0' in text


async def test_shadow_beyond_the_limit_is_dropped(config_dir: Path, upstream_url: str,
                                                  session: aiohttp.ClientSession) -> None:
    write_resources(config_dir, resources(upstream_url, 100, mode="shadow"))
    async with running_proxy(config_dir, shadow_concurrency=1) as server:
        # V2 (the fake upstream) is slow for this model; V1 (mock) answers at once.
        for _ in range(3):
            version, _ = await _ask_model(session, server, "slow-0.5")
            assert version == "v1"
        text = server.metrics.exposition().decode()
        assert 'vpipe_shadow_requests_total{result="dropped",route="chat"} 2.0' in text
        assert server.shadow.in_flight == 1


async def test_shadow_v2_error_counts_failed_and_is_compared(
        config_dir: Path, upstream_url: str, session: aiohttp.ClientSession) -> None:
    write_resources(config_dir, resources(upstream_url, 100, mode="shadow"))
    async with running_proxy(config_dir) as server:
        version, body = await _ask_model(session, server, "status-503")
        assert version == "v1" and body["choices"][0]["message"]["content"].startswith("Mock")

        def failed() -> bool:
            return 'vpipe_shadow_requests_total{result="failed",route="chat"} 1.0' in \
                server.metrics.exposition().decode()

        await wait_for(failed)
        text = server.metrics.exposition().decode()
        assert 'vpipe_shadow_match_total{aspect="status",match="false",route="chat"} 1.0' in text
        assert 'result="sent"' not in text


async def _ask_model(session: aiohttp.ClientSession, server: ProxyServer,
                     model: str) -> tuple[str, dict[str, Any]]:
    async with session.post(server.url + CHAT, json={
            "model": model, "messages": [{"role": "user", "content": "x"}]}) as r:
        assert r.status == 200
        return r.headers["x-vpipe-version"], await r.json()


@pytest.mark.parametrize("contents", [False, True])
async def test_shadow_diff_log_is_sampled_and_redacted(
        config_dir: Path, upstream_url: str, session: aiohttp.ClientSession,
        caplog: pytest.LogCaptureFixture, contents: bool) -> None:
    docs = resources(upstream_url, 100, mode="shadow")
    docs[1]["spec"]["modules"][0]["provider"]["credentials"] = {
        "secretRef": {"name": "v2", "key": "api-key"}}
    write_resources(config_dir, docs)
    caplog.set_level("DEBUG")  # every logger: the key must reach none of them
    async with running_proxy(config_dir, shadow_log_sample=1.0, shadow_log_contents=contents,
                             environ={"VPIPE_SECRET_V2_API_KEY": "sk-v2-very-secret"}) as server:
        await ask(session, server, text="private words")
        await wait_for(lambda: "shadow diff" in caplog.text)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("shadow diff"))
    diff = orjson.loads(line.removeprefix("shadow diff "))
    assert diff["route"] == "chat" and diff["v1"]["status"] == diff["v2"]["status"] == 200
    assert diff["v1"]["finish"] == diff["v2"]["finish"] == "stop"
    assert 0 <= diff["similarity"] < 1
    if contents:
        assert diff["v2"]["text"] == "fake says: private words"
    else:
        assert diff["v2"]["text"] == {"redacted": True, "chars": len("fake says: private words")}
        assert "private words" not in caplog.text
    assert "sk-v2-very-secret" not in caplog.text


async def test_shadow_diff_log_off_at_sample_zero(
        config_dir: Path, upstream_url: str, session: aiohttp.ClientSession,
        caplog: pytest.LogCaptureFixture) -> None:
    write_resources(config_dir, resources(upstream_url, 100, mode="shadow"))
    caplog.set_level("INFO", logger="vpipe")
    async with running_proxy(config_dir, shadow_log_sample=0.0) as server:
        await ask(session, server)
        await wait_for(lambda: 'result="sent"' in server.metrics.exposition().decode())
    assert "shadow diff" not in caplog.text
