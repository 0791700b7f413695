"""Responses-API threads keep their version: `previous_response_id` chains and conversations.

V1 and V2 are two separate upstreams that each keep their own responses (the fake answers a
`previous_response_id` it did not create with a 404, as OpenAI does), so a thread sent to the
wrong version fails, as it would in production.

Aspects: a chain stays on the version that answered its first turn, streamed or whole, while
the weight rises; a thread from before the canary stays on V1; abort sends V2's chains to V1 and
promote sends V1's to V2; a conversation id keeps its version and new ones split by weight;
x-vpipe-version still wins; VPIPE_THREAD_PINS=0 turns pinning off (and chains then break).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
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

ANSWERED_BY = {"alpha": "v1", "beta": "v2"}


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[FakeUpstream, str, FakeUpstream, str]]:
    alpha = FakeUpstream(name="alpha", stores_responses=True)
    beta = FakeUpstream(name="beta", stores_responses=True)
    async with running_upstream(alpha) as alpha_url, running_upstream(beta) as beta_url:
        yield alpha, alpha_url, beta, beta_url


def responses_pipeline(name: str, url: str) -> dict[str, Any]:
    return pipeline(name, {"family": "openai-compatible", "protocol": "openai-responses",
                           "baseUrl": url})


class Setup:
    """Writes the two pipelines and a route at a given canary weight, and waits for the proxy
    to serve it."""

    def __init__(self, config_dir: Path, alpha_url: str, beta_url: str) -> None:
        self.config_dir, self.alpha_url, self.beta_url = config_dir, alpha_url, beta_url

    def write(self, weight: int | None) -> None:
        canary = None if weight is None else {"pipeline": "v2", "weight": weight}
        write_resources(self.config_dir, [
            responses_pipeline("v1", self.alpha_url), responses_pipeline("v2", self.beta_url),
            route("resp", ["*"], "v1", **({"canary": canary} if canary else {}))])

    async def apply(self, server: ProxyServer, weight: int | None) -> None:
        assert server.reloader.current is not None
        revision = server.reloader.current.revision
        self.write(weight)
        await wait_for_revision(server, revision)
        assert server.reloader.status.failures == 0


@pytest.fixture
def setup(config_dir: Path, upstreams: tuple[FakeUpstream, str, FakeUpstream, str]) -> Setup:
    return Setup(config_dir, upstreams[1], upstreams[3])


async def turn(client: AsyncOpenAI, text: str, speakers: dict[str, str] = ANSWERED_BY,
               **params: Any) -> tuple[str, str]:
    """(version header, response id) of one Responses turn; checks the text came from the
    upstream the header names (`speakers`: upstream name -> version)."""
    raw = await client.responses.with_raw_response.create(model="m", input=text, **params)
    response = raw.parse()
    version = raw.headers["x-vpipe-version"]
    speaker = response.output_text.split(" ")[0]
    assert speakers[speaker] == version, response.output_text
    return version, response.id


async def streamed_turn(client: AsyncOpenAI, text: str, **params: Any) -> tuple[str, str]:
    async with client.responses.with_streaming_response.create(
            model="m", input=text, stream=True, **params) as raw:
        version = raw.headers["x-vpipe-version"]
        stream = await raw.parse()
        completed = [e async for e in stream if e.type == "response.completed"]
    response = completed[0].response  # type: ignore[union-attr]
    assert ANSWERED_BY[response.output_text.split(" ")[0]] == version
    return version, response.id


@pytest.fixture
async def client() -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url="http://unused/v1", api_key="x", max_retries=0) as c:
        yield c


def at(client: AsyncOpenAI, server: ProxyServer) -> AsyncOpenAI:
    return client.with_options(base_url=server.url + "/v1")


async def test_chains_keep_their_version_as_the_weight_rises(
        setup: Setup, config_dir: Path, client: AsyncOpenAI) -> None:
    setup.write(30)
    async with running_proxy(config_dir) as server:
        c = at(client, server)
        chains: dict[int, tuple[str, str]] = {}
        for n in range(40):  # every other chain starts streamed
            first = streamed_turn if n % 2 else turn
            chains[n] = await first(c, f"chain {n}")
        assert set(v for v, _ in chains.values()) == {"v1", "v2"}
        for weight in (30, 60, 95):
            if weight != 30:
                await setup.apply(server, weight)
            for n, (version, last) in chains.items():
                # Each later turn carries only its new input: no opening to hash.
                step = streamed_turn if n % 3 == 0 else turn
                answered, rid = await step(c, f"more at {weight}", previous_response_id=last)
                assert answered == version, f"chain {n} moved at weight {weight}"
                chains[n] = (version, rid)


async def test_a_thread_from_before_the_canary_stays_on_v1(
        setup: Setup, config_dir: Path, client: AsyncOpenAI) -> None:
    setup.write(None)
    async with running_proxy(config_dir) as server:
        c = at(client, server)
        threads = [(await turn(c, f"old {n}"))[1] for n in range(20)]
        await setup.apply(server, 99)
        for last in threads:
            assert (await turn(c, "next", previous_response_id=last))[0] == "v1"
        assert (await turn(c, "a new thread", user="u-1"))[0] == "v2"  # the weight applies


async def test_abort_sends_v2_chains_to_v1_and_promote_v1_chains_to_v2(
        setup: Setup, config_dir: Path, client: AsyncOpenAI,
        upstreams: tuple[FakeUpstream, str, FakeUpstream, str]) -> None:
    alpha, _, beta, _ = upstreams
    setup.write(50)
    async with running_proxy(config_dir) as server:
        c = at(client, server)
        started = [await turn(c, f"thread {n}") for n in range(30)]
        on_v2 = [rid for version, rid in started if version == "v2"]
        on_v1 = [rid for version, rid in started if version == "v1"]
        assert on_v1 and on_v2
        await setup.apply(server, 0)  # abort: no request reaches the canary
        before = len(beta.requests)
        with pytest.raises(openai.NotFoundError, match="not found"):
            await turn(c, "after abort", previous_response_id=on_v2[0])
        assert alpha.requests[-1].body["previous_response_id"] == on_v2[0]
        assert len(beta.requests) == before
        await setup.apply(server, 100)  # promoted: every request reaches the canary
        with pytest.raises(openai.NotFoundError):
            await turn(c, "after promote", previous_response_id=on_v1[0])
        assert beta.requests[-1].body["previous_response_id"] == on_v1[0]


async def test_conversations_keep_their_version(
        setup: Setup, config_dir: Path, client: AsyncOpenAI) -> None:
    setup.write(None)
    async with running_proxy(config_dir) as server:
        c = at(client, server)
        assert (await turn(c, "before", conversation="conv_old"))[0] == "v1"
        await setup.apply(server, 50)
        seen = {}
        for n in range(40):
            seen[n] = (await turn(c, "first", conversation=f"conv_{n}"))[0]
        assert set(seen.values()) == {"v1", "v2"}
        await setup.apply(server, 95)
        for n, version in seen.items():
            assert (await turn(c, "again", conversation={"id": f"conv_{n}"}))[0] == version
        assert (await turn(c, "still", conversation="conv_old"))[0] == "v1"


async def test_forced_version_wins_and_pins(
        setup: Setup, config_dir: Path, client: AsyncOpenAI) -> None:
    setup.write(0)
    async with running_proxy(config_dir) as server:
        c = at(client, server)
        version, rid = await turn(c, "try v2", extra_headers={"x-vpipe-version": "v2"})
        assert version == "v2"
        await setup.apply(server, 10)
        assert (await turn(c, "next", previous_response_id=rid))[0] == "v2"


async def test_the_pin_store_is_bounded_and_exported(
        setup: Setup, config_dir: Path, client: AsyncOpenAI) -> None:
    setup.write(100)
    async with running_proxy(config_dir, thread_pins=3) as server:
        c = at(client, server)
        for n in range(5):
            assert (await turn(c, f"thread {n}"))[0] == "v2"
        text = server.metrics.exposition().decode()
        assert "\nvpipe_thread_pins 3.0\n" in text
        assert "\nvpipe_thread_pins_evicted_total 2.0\n" in text


async def test_without_pins_chains_break(setup: Setup, config_dir: Path,
                                         client: AsyncOpenAI) -> None:
    """The control: with pinning off, a V2 chain's next turn goes to V1, which lacks it."""
    setup.write(50)
    async with running_proxy(config_dir, thread_pins=0) as server:
        c = at(client, server)
        started = [await turn(c, f"thread {n}") for n in range(20)]
        rid = next(rid for version, rid in started if version == "v2")
        with pytest.raises(openai.NotFoundError):
            await turn(c, "next", previous_response_id=rid)


async def test_shadow_does_not_copy_thread_turns(
        setup: Setup, config_dir: Path, client: AsyncOpenAI,
        upstreams: tuple[FakeUpstream, str, FakeUpstream, str]) -> None:
    """A copy would reach a provider without the thread, or add to the user's conversation."""
    _, _, beta, _ = upstreams
    write_resources(config_dir, [
        responses_pipeline("v1", setup.alpha_url), responses_pipeline("v2", setup.beta_url),
        route("resp", ["*"], "v1", canary={"pipeline": "v2", "weight": 100, "mode": "shadow"})])
    async with running_proxy(config_dir) as server:
        c = at(client, server)
        version, rid = await turn(c, "opening")
        assert version == "v1"
        assert (await turn(c, "next", previous_response_id=rid))[0] == "v1"
        assert (await turn(c, "in a conversation", conversation="conv_1"))[0] == "v1"
        deadline = asyncio.get_running_loop().time() + 5
        while 'result="sent"' not in server.metrics.exposition().decode():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        text = server.metrics.exposition().decode()
        assert 'vpipe_shadow_requests_total{result="skipped",route="resp"} 2.0' in text
        assert 'vpipe_shadow_requests_total{result="sent",route="resp"} 1.0' in text
        assert [seen.body["input"] for seen in beta.requests] == ["opening"]


async def test_pins_follow_pipelines_when_the_canary_becomes_stable(
        setup: Setup, config_dir: Path, client: AsyncOpenAI) -> None:
    """Finishing a promote in Git (spec.pipeline: the canary) then starting the next canary:
    the promoted pipeline's threads are V1's now and stay there, not on the new canary."""
    gamma = FakeUpstream(name="gamma", stores_responses=True)
    setup.write(50)
    async with running_upstream(gamma) as gamma_url, running_proxy(config_dir) as server:
        c = at(client, server)
        started = [await turn(c, f"thread {n}") for n in range(20)]
        on_beta = [rid for version, rid in started if version == "v2"]
        assert on_beta
        revision = server.reloader.current.revision  # type: ignore[union-attr]
        write_resources(config_dir, [
            responses_pipeline("v2", setup.beta_url), responses_pipeline("v3", gamma_url),
            route("resp", ["*"], "v2", canary={"pipeline": "v3", "weight": 90})])
        await wait_for_revision(server, revision)
        now = {"beta": "v1", "gamma": "v2"}  # beta serves the stable pipeline now
        for rid in on_beta:
            assert (await turn(c, "after", now, previous_response_id=rid))[0] == "v1"
        assert (await turn(c, "a new thread", now, user="u-1"))[0] == "v2"
