"""The webhook over real HTTPS on 127.0.0.1: AdmissionReview in, AdmissionReview out.

The server loads a certificate made in the test; the client trusts only its CA, as the API
server trusts the caBundle. Aspects tested:
- round trips: opt-in path and namespace path, the patch applies and mounts the namespace's
  Secrets; uid and apiVersion echoed; pods that are not injected get no patch;
- admission is never failed: lookup errors, timeouts and bugs give `allowed: true`, no patch,
  and a warning; only a body that is not an AdmissionReview gets a 400;
- TLS: an untrusting client is refused; a rotated certificate is served without a restart;
- `run_webhook` and `python -m vpipe_operator.injection` start, stop and report bad settings.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.injection.conftest import FakeSecrets, apply_patch, make_pod
from tests.injection.tlsgen import Pki, make_pki
from vpipe_operator.credentials import Credentials
from vpipe_operator.injection import __main__ as entry
from vpipe_operator.injection.server import WebhookServer, run_webhook
from vpipe_operator.injection.settings import SidecarSettings, WebhookSettings

UID = "705ab4f5-6393-11e8-b7cc-42010a800002"


def review(pod: dict[str, Any], *, namespace: str = "team-a", operation: str = "CREATE",
           kind: str = "Pod", api_version: str = "admission.k8s.io/v1") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": {
        "uid": UID, "kind": {"group": "", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": namespace, "operation": operation, "object": pod,
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "dryRun": False}}


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "tls")


def settings_for(pki: Pki, **changes: Any) -> WebhookSettings:
    base: dict[str, Any] = {
        "host": "127.0.0.1", "port": 0, "cert_file": str(pki.cert), "key_file": str(pki.key),
        "lookup_timeout": 0.3, "shutdown_delay": 0.0, "namespace": "vpipe-system",
        "sidecar": SidecarSettings(image="registry.example/vpipe-proxy:1.2.3")}
    return WebhookSettings(**{**base, **changes})


class Webhook:
    def __init__(self, server: WebhookServer, client: aiohttp.ClientSession) -> None:
        self.server = server
        self.client = client
        self.url = f"https://127.0.0.1:{server.port}"

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with self.client.post(self.url + path, data=data,
                                    headers={"Content-Type": "application/json"}) as response:
            return response.status, await response.json()

    async def review(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        status, answer = await self.post(path, body)
        assert status == 200, answer
        assert answer["kind"] == "AdmissionReview"
        assert answer["apiVersion"] == body["apiVersion"]
        assert answer["response"]["uid"] == UID and answer["response"]["allowed"] is True
        response: dict[str, Any] = answer["response"]
        return response


@contextlib.asynccontextmanager
async def started(settings: WebhookSettings, source: FakeSecrets,
                  pki: Pki) -> AsyncIterator[Webhook]:
    server = WebhookServer(settings, source)
    await server.start()
    client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=pki.client_context()))
    try:
        yield Webhook(server, client)
    finally:
        await client.close()
        await server.stop()


@pytest.fixture
async def webhook(pki: Pki, secrets: FakeSecrets) -> AsyncIterator[Webhook]:
    async with started(settings_for(pki), secrets, pki) as w:
        yield w


def patch_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    assert response["patchType"] == "JSONPatch"
    patch: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"]))
    return patch


def proxy_of(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "vpipe-proxy")


# --- round trips -------------------------------------------------------------------------------

async def test_opted_in_pod_gets_the_sidecar_and_the_namespace_secrets(
        webhook: Webhook, secrets: FakeSecrets) -> None:
    pod = make_pod(annotations={"vpipe.io/inject": "true"})
    response = await webhook.review("/inject", review(pod))
    patched = apply_patch(pod, patch_of(response))
    proxy = proxy_of(patched)
    assert proxy["image"] == "registry.example/vpipe-proxy:1.2.3"
    assert [m["mountPath"] for m in proxy["volumeMounts"]] == [
        "/etc/vpipe", "/var/run/vpipe/secrets/deepseek", "/var/run/vpipe/secrets/glm"]
    assert "warnings" not in response
    assert secrets.asked == ["team-a"]


async def test_namespace_path_injects_unannotated_pods(webhook: Webhook) -> None:
    response = await webhook.review("/inject/namespace", review(make_pod()))
    assert proxy_of(apply_patch(make_pod(), patch_of(response)))


@pytest.mark.parametrize(("path", "pod", "namespace"), [
    ("/inject", make_pod(), "team-a"),  # not opted in
    ("/inject/pod", make_pod(), "team-a"),
    ("/inject/namespace", make_pod(annotations={"vpipe.io/inject": "false"}), "team-a"),
    ("/inject", make_pod(annotations={"vpipe.io/inject": "true"}), "vpipe-system"),
])
async def test_pods_left_alone_get_no_patch_and_no_lookup(
        webhook: Webhook, secrets: FakeSecrets, path: str, pod: dict[str, Any],
        namespace: str) -> None:
    response = await webhook.review(path, review(pod, namespace=namespace))
    assert "patch" not in response and "warnings" not in response
    assert secrets.asked == []


async def test_second_admission_of_an_injected_pod_is_a_no_op(webhook: Webhook) -> None:
    pod = make_pod(annotations={"vpipe.io/inject": "true"})
    patched = apply_patch(pod, patch_of(await webhook.review("/inject", review(pod))))
    response = await webhook.review("/inject", review(patched))
    assert "patch" not in response


@pytest.mark.parametrize(("operation", "kind"), [("UPDATE", "Pod"), ("CREATE", "Deployment")])
async def test_other_operations_and_kinds_pass(webhook: Webhook, operation: str, kind: str) -> None:
    pod = make_pod(annotations={"vpipe.io/inject": "true"})
    response = await webhook.review("/inject", review(pod, operation=operation, kind=kind))
    assert "patch" not in response


async def test_v1beta1_reviews_are_answered_in_kind(webhook: Webhook) -> None:
    body = review(make_pod(annotations={"vpipe.io/inject": "true"}),
                  api_version="admission.k8s.io/v1beta1")
    assert patch_of(await webhook.review("/inject", body))


async def test_bad_annotations_come_back_as_warnings(webhook: Webhook) -> None:
    pod = make_pod(annotations={"vpipe.io/inject": "true", "vpipe.io/proxy-cpu-request": "lots"})
    response = await webhook.review("/inject", review(pod))
    assert patch_of(response)
    assert response["warnings"] == [
        "vpipe: Invalid vpipe.io/proxy-cpu-request='lots'. Needs to be a Kubernetes quantity "
        "(e.g. 50m, 0.5, 64Mi); ignored"]


# --- never failing admission -------------------------------------------------------------------

async def test_lookup_failure_admits_without_sidecar_and_warns(
        pki: Pki, failing_secrets: FakeSecrets) -> None:
    async with started(settings_for(pki), failing_secrets, pki) as webhook:
        pod = make_pod(annotations={"vpipe.io/inject": "true"})
        response = await webhook.review("/inject", review(pod))
        assert "patch" not in response
        assert response["warnings"] == [
            "vpipe: sidecar not injected: GET /api/v1/namespaces/team-a/configmaps/vpipe-config "
            "answered 403"]


async def test_slow_lookup_admits_within_the_timeout(pki: Pki) -> None:
    async with started(settings_for(pki), FakeSecrets(delay=5.0), pki) as webhook:
        pod = make_pod(annotations={"vpipe.io/inject": "true"})
        response = await asyncio.wait_for(webhook.review("/inject", review(pod)), 2.0)
        assert "patch" not in response
        assert response["warnings"] == [
            "vpipe: sidecar not injected: reading team-a/vpipe-config took longer than 0.3 s"]


async def test_a_bug_admits_without_sidecar_and_warns(pki: Pki) -> None:
    async with started(settings_for(pki), FakeSecrets(error=RuntimeError("boom")), pki) as webhook:
        response = await webhook.review("/inject", review(make_pod(
            annotations={"vpipe.io/inject": "true"})))
        assert "patch" not in response
        assert response["warnings"] == ["vpipe: sidecar not injected: internal error: boom"]


@pytest.mark.parametrize("body", [b"{not json", {"kind": "AdmissionReview"},
                                  {"request": {"uid": ""}}, [1, 2]])
async def test_not_an_admission_review_is_a_400(webhook: Webhook, body: Any) -> None:
    status, answer = await webhook.post("/inject", body)
    assert status == 400 and answer["error"].startswith("not an AdmissionReview")


async def test_healthz(webhook: Webhook) -> None:
    async with webhook.client.get(webhook.url + "/healthz") as response:
        assert response.status == 200 and await response.json() == {"ok": True}


# --- TLS ---------------------------------------------------------------------------------------

async def test_a_client_without_the_ca_is_refused(webhook: Webhook) -> None:
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await client.get(webhook.url + "/healthz")


async def test_rotated_certificate_is_served_without_restart(
        webhook: Webhook, pki: Pki, tmp_path: Path) -> None:
    rotated = make_pki(tmp_path / "rotated", ca_name="rotated-ca")
    pki.cert.write_bytes(rotated.cert.read_bytes())
    pki.key.write_bytes(rotated.key.read_bytes())
    assert webhook.server.certificate is not None and webhook.server.certificate.reload()
    assert not webhook.server.certificate.reload()  # unchanged files are not reloaded
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            ssl=rotated.client_context())) as client, client.get(webhook.url + "/healthz") as r:
        assert r.status == 200
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            ssl=pki.client_context())) as old:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await old.get(webhook.url + "/healthz")


async def test_a_missing_certificate_names_the_files(pki: Pki, tmp_path: Path) -> None:
    from vpipe_operator.errors import SettingsError

    settings = settings_for(pki, cert_file=str(tmp_path / "nope.crt"))
    with pytest.raises(SettingsError, match=r"nope\.crt.*tls\.crt and tls\.key"):
        await WebhookServer(settings, FakeSecrets()).start()


# --- entry points ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_run_webhook_serves_until_cancelled(pki: Pki, secrets: FakeSecrets) -> None:
    port = free_port()
    settings = settings_for(pki, port=port, shutdown_delay=0.2)
    task = asyncio.create_task(run_webhook(settings, Credentials(server="https://unused",
                                                                 origin="test"), source=secrets))
    context = pki.client_context()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as client:
        for _ in range(100):
            try:
                async with client.get(f"https://127.0.0.1:{port}/healthz") as response:
                    assert response.status == 200
                    break
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.02)
        else:
            pytest.fail("run_webhook never listened")
        task.cancel()
        await asyncio.sleep(0.05)  # within the shutdown delay: still answering
        async with client.get(f"https://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
    with pytest.raises(asyncio.CancelledError):
        await task


def test_main_reports_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert entry.main([], environ={"VPIPE_WEBHOOK_PORT": "x"}) == 2
    assert "Invalid VPIPE_WEBHOOK_PORT='x'" in capsys.readouterr().err


def test_main_reports_missing_credentials(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    assert entry.main([], environ={"HOME": str(tmp_path)}) == 2
    assert "no Kubernetes credentials found" in capsys.readouterr().err


def test_main_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert entry.main(["--help"]) == 0
    assert "VPIPE_WEBHOOK_*" in capsys.readouterr().out


def test_ssl_minimum_version(pki: Pki) -> None:
    from vpipe_operator.injection.server import ReloadingCertificate

    assert ReloadingCertificate(str(pki.cert), str(pki.key)).context.minimum_version == \
        ssl.TLSVersion.TLSv1_2


def test_the_webhook_process_does_not_import_kopf() -> None:
    """It answers on every replica, active or standby: kopf (and its peering) stay out of it."""
    import subprocess
    import sys

    code = ("import sys, vpipe_operator.injection.__main__, vpipe_operator.injection.server; "
            "print('kopf' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
