"""Zero loss while a canary rolls out: continuous load, streams included, through every move.

V1 and V2 are two separate upstreams, so which one answered each request is known exactly (by a
marker in its text). Under load from the openai and anthropic SDKs, whole and streamed, the
weight goes 0 -> 5 -> 25 -> 50 -> 100, is aborted to 0, resumed, and an unrelated config change
reloads the proxy. No request may fail, every answer must come whole from the version its
`x-vpipe-version` header names, and a stream that started on V1 before the first step must end
on V1 after the last.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy import (
    pipeline,
    route,
    running_proxy,
    running_upstream,
    wait_for_revision,
    write_resources,
)
from vpipe_proxy.server import ProxyServer

STREAM_MODEL = "pause-0.15"  # one chunk, a pause, the rest: each stream spans config changes


@dataclass(frozen=True)
class Answer:
    marker: str
    version: str
    text: str
    kind: str


@pytest.fixture
async def upstreams() -> AsyncIterator[dict[str, tuple[FakeUpstream, str]]]:
    alpha, beta = FakeUpstream(name="alpha"), FakeUpstream(name="beta")
    async with running_upstream(alpha) as alpha_url, running_upstream(beta) as beta_url:
        yield {"v1": (alpha, alpha_url), "v2": (beta, beta_url)}


def config(urls: dict[str, str], weight: int, extra_route: bool = False) -> list[dict[str, Any]]:
    docs = [pipeline("v1", {"family": "openai-compatible", "baseUrl": urls["v1"]}),
            pipeline("v2", {"family": "openai-compatible", "baseUrl": urls["v2"]}),
            route("chat", ["*"], "v1", canary={"pipeline": "v2", "weight": weight})]
    if extra_route:
        docs.append(route("other", ["other-*"], "v1", priority=10))
    return docs


async def serve(server: ProxyServer, config_dir: Path, docs: list[dict[str, Any]]) -> None:
    """Write a config and wait until the proxy serves it."""
    assert server.reloader.current is not None
    revision = server.reloader.current.revision
    write_resources(config_dir, docs)
    await wait_for_revision(server, revision)


async def chat_whole(openai: AsyncOpenAI, marker: str) -> Answer:
    raw = await openai.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": marker}])
    text = raw.parse().choices[0].message.content or ""
    return Answer(marker, raw.headers["x-vpipe-version"], text, "chat")


async def chat_stream(openai: AsyncOpenAI, marker: str) -> Answer:
    async with openai.chat.completions.with_streaming_response.create(
            model=STREAM_MODEL, stream=True,
            messages=[{"role": "user", "content": marker}]) as raw:
        version = raw.headers["x-vpipe-version"]
        text = "".join([c.choices[0].delta.content or "" async for c in await raw.parse()
                        if c.choices])
    return Answer(marker, version, text, "chat stream")


async def anthropic_stream(anthropic: AsyncAnthropic, marker: str) -> Answer:
    async with anthropic.messages.with_streaming_response.create(
            model=STREAM_MODEL, max_tokens=50, stream=True,
            messages=[{"role": "user", "content": marker}]) as raw:
        version = raw.headers["x-vpipe-version"]
        text = "".join([e.delta.text async for e in await raw.parse()  # type: ignore[union-attr]
                        if e.type == "content_block_delta" and e.delta.type == "text_delta"])
    return Answer(marker, version, text, "anthropic stream")


async def test_a_rollout_under_load_fails_no_request(
        config_dir: Path, upstreams: dict[str, tuple[FakeUpstream, str]]) -> None:
    urls = {version: url for version, (_, url) in upstreams.items()}
    fakes = {version: fake for version, (fake, _) in upstreams.items()}
    write_resources(config_dir, config(urls, 0))
    async with running_proxy(config_dir) as server, \
            AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0) as openai, \
            AsyncAnthropic(base_url=server.url, api_key="x", max_retries=0) as anthropic:
        # Held open from before the first step to after the last.
        long_stream = asyncio.create_task(_long_stream(openai))
        await asyncio.sleep(0.1)
        answers: list[Answer] = []
        stop = asyncio.Event()
        counter = itertools.count()

        async def load(kind: int) -> None:
            while not stop.is_set():
                marker = f"req-{next(counter)}"
                if kind == 0:
                    answers.append(await anthropic_stream(anthropic, marker))
                elif kind % 2:
                    answers.append(await chat_stream(openai, marker))
                else:
                    answers.append(await chat_whole(openai, marker))

        workers = [asyncio.create_task(load(kind)) for kind in range(6)]
        steps = [(5, False), (25, False), (50, False), (100, False),
                 (0, False),   # abort
                 (50, False),  # resume
                 (50, True),   # an unrelated change: a reload that moves nothing
                 (100, True)]
        for weight, extra in steps:
            await serve(server, config_dir, config(urls, weight, extra))
            await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*workers)  # any failed request raises here
        long_answer = await long_stream

    assert long_answer.version == "v1" and long_answer.text == "fake says: long-lived"
    assert len(answers) > 100
    by_version = {"v1": 0, "v2": 0}
    for answer in answers:
        by_version[answer.version] += 1
        # Whole, from the upstream the header names, and from that one only.
        assert answer.text == f"fake says: {answer.marker}", answer
        other = "v2" if answer.version == "v1" else "v1"
        assert _saw(fakes[answer.version], answer.marker), answer
        assert not _saw(fakes[other], answer.marker), answer
    assert by_version["v1"] > 10 and by_version["v2"] > 10
    assert server.reloader.status.failures == 0
    assert {a.kind for a in answers} == {"chat", "chat stream", "anthropic stream"}


async def _long_stream(openai: AsyncOpenAI) -> Answer:
    async with openai.chat.completions.with_streaming_response.create(
            model="pause-5", stream=True,
            messages=[{"role": "user", "content": "long-lived"}]) as raw:
        version = raw.headers["x-vpipe-version"]
        text = "".join([c.choices[0].delta.content or "" async for c in await raw.parse()
                        if c.choices])
    return Answer("long-lived", version, text, "chat stream")


def _saw(fake: FakeUpstream, marker: str) -> bool:
    quoted = orjson.dumps(marker)  # whole strings only: "req-1" is not in "req-10"
    return any(quoted in orjson.dumps(seen.body) for seen in fake.requests)
