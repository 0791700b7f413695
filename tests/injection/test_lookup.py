"""Which Secrets a namespace needs: `secret_names_in` and `ConfigMapSecretSource`.

Aspects tested:
- the names come from a document rendered by `vpipe_api` itself (the contract, not a copy);
- the real source against a fake API server on 127.0.0.1 over HTTPS (a CA made in the test,
  as the service account's ca.crt): bearer token sent, 404 means "no Secrets", 403 names RBAC,
  a slow server is a `SecretLookupError`, not a hang;
- the short cache, and one GET for a burst of pods of the same namespace.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.injection.tlsgen import Pki, make_pki
from vpipe_api.loading import load_resources
from vpipe_api.render import render
from vpipe_operator.credentials import Credentials
from vpipe_operator.injection.lookup import ConfigMapSecretSource, SecretLookupError, secret_names_in

ROOT = Path(__file__).resolve().parents[2]


def rendered_config() -> str:
    resources = load_resources([ROOT / "examples" / "providers"])
    return render(resources.pipelines, resources.routes).to_json().decode()


def test_secret_names_of_a_rendered_document() -> None:
    raw = rendered_config()
    expected = sorted({i["config"]["credentials"]["name"]
                       for i in json.loads(raw)["instances"].values()
                       if i["type"] == "provider" and i["config"]["credentials"]})
    assert expected, "examples/providers should reference at least one Secret"
    assert secret_names_in(raw) == tuple(expected)


def test_a_newer_document_version_still_yields_its_references() -> None:
    doc = {"configVersion": "vpipe.io/config.v9", "instances": {
        "p": {"type": "provider", "config": {"credentials": {"name": "b", "key": "k"}}},
        "q": {"type": "provider", "config": {"credentials": {"name": "a", "key": "k"}}},
        "m": {"type": "provider", "config": {"credentials": None}},
        "c": {"type": "compatibility", "config": {"rules": []}}}}
    assert secret_names_in(json.dumps(doc)) == ("a", "b")


@pytest.mark.parametrize("raw", ["{not json", "[]", '{"instances": []}'])
def test_unusable_documents_raise(raw: str) -> None:
    with pytest.raises(SecretLookupError, match=r"vpipe-config/config\.json"):
        secret_names_in(raw)


class FakeApi:
    """Just enough of the API server: GET one ConfigMap; counts requests, can stall."""

    def __init__(self) -> None:
        self.configmaps: dict[str, dict[str, Any]] = {}
        self.status = 200
        self.delay = 0.0
        self.requests: list[tuple[str, str | None]] = []

    async def get_configmap(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, request.headers.get("Authorization")))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.json_response({"kind": "Status", "message": "configmaps is forbidden: "
                                      "User cannot get resource"}, status=self.status)
        configmap = self.configmaps.get(request.match_info["namespace"])
        if configmap is None or request.match_info["name"] != "vpipe-config":
            return web.json_response({"kind": "Status", "reason": "NotFound"}, status=404)
        return web.json_response(configmap)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "api-tls")


@pytest.fixture
async def api(pki: Pki) -> AsyncIterator[tuple[FakeApi, str]]:
    fake = FakeApi()
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{namespace}/configmaps/{name}", fake.get_configmap)
    runner = web.AppRunner(app, shutdown_timeout=0.1)  # stalled handlers end with the test
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert, pki.key)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield fake, f"https://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def source(api: tuple[FakeApi, str], pki: Pki) -> AsyncIterator[ConfigMapSecretSource]:
    credentials = Credentials(server=api[1], origin="test", ca_path=str(pki.ca), token="t0ken")
    src = ConfigMapSecretSource(credentials, timeout=0.5, ttl=5.0, clock=Clock())
    try:
        yield src
    finally:
        await src.close()


async def test_reads_the_namespace_configmap_with_the_token(
        api: tuple[FakeApi, str], source: ConfigMapSecretSource) -> None:
    fake, _ = api
    fake.configmaps["team-a"] = {"data": {"config.json": rendered_config()}}
    assert await source.secret_names("team-a") == secret_names_in(rendered_config())
    assert fake.requests == [("/api/v1/namespaces/team-a/configmaps/vpipe-config", "Bearer t0ken")]


async def test_no_configmap_means_no_secrets(source: ConfigMapSecretSource) -> None:
    assert await source.secret_names("empty") == ()


async def test_forbidden_names_the_missing_permission(
        api: tuple[FakeApi, str], source: ConfigMapSecretSource) -> None:
    api[0].status = 403
    with pytest.raises(SecretLookupError, match=r"answered 403 \(the webhook's service account "
                                                r"needs `get` on configmaps\): .*forbidden"):
        await source.secret_names("team-a")


async def test_a_stalled_api_server_is_an_error_not_a_hang(
        api: tuple[FakeApi, str], source: ConfigMapSecretSource) -> None:
    api[0].delay = 5.0
    with pytest.raises(SecretLookupError, match="TimeoutError"):
        await asyncio.wait_for(source.secret_names("team-a"), 3.0)


async def test_cached_briefly_and_one_get_per_burst(
        api: tuple[FakeApi, str], source: ConfigMapSecretSource) -> None:
    fake, _ = api
    fake.configmaps["team-a"] = {"data": {"config.json": rendered_config()}}
    fake.delay = 0.05
    answers = await asyncio.gather(*(source.secret_names("team-a") for _ in range(20)))
    assert len(set(answers)) == 1 and len(fake.requests) == 1
    await source.secret_names("team-a")
    assert len(fake.requests) == 1  # within the TTL
    assert isinstance(source.clock, Clock)
    source.clock.now += 6.0
    await source.secret_names("team-a")
    assert len(fake.requests) == 2


async def test_an_untrusted_server_is_refused(api: tuple[FakeApi, str], tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other", ca_name="someone-else")
    credentials = Credentials(server=api[1], origin="test", ca_path=str(other.ca), token="t")
    src = ConfigMapSecretSource(credentials, timeout=2.0)
    try:
        with pytest.raises(SecretLookupError, match="Certificate"):
            await src.secret_names("team-a")
    finally:
        await src.close()
    assert api[0].requests == []
