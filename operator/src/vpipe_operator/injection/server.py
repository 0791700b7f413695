"""The webhook's HTTPS server: bytes in, `review.answer`, bytes out. Nothing is decided here.

Endpoints (one TLS port, default 8443):
- `POST /inject/namespace`: pods of namespaces labelled `vpipe.io/inject=enabled` (injected
  unless they opt out);
- `POST /inject` (and `/inject/pod`): pods that opt in with `vpipe.io/inject: "true"`;
- `GET /healthz`: the process answers (liveness and readiness of the webhook container).

The serving certificate is re-read when its files change (cert-manager rotates it; kubelet
swaps the mounted Secret atomically); new connections get the new certificate, no restart.

`run_webhook(settings, credentials)` serves until cancelled. It runs as its own container
(`python -m vpipe_operator.injection`, see `__main__`) in the operator's pod, or as a task in
any asyncio program that already has API credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
from typing import Final

from aiohttp import web

from vpipe_operator.credentials import Credentials
from vpipe_operator.errors import SettingsError
from vpipe_operator.injection import review
from vpipe_operator.injection.lookup import ConfigMapSecretSource, SecretSource
from vpipe_operator.injection.settings import WebhookSettings

logger = logging.getLogger("vpipe_operator.injection")

MAX_BODY: Final = 4 * 1024 * 1024  # a Pod object is far smaller; the API server caps at 3 MiB


class ReloadingCertificate:
    """A server `SSLContext` whose certificate follows the files it was loaded from."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._stamp: tuple[object, ...] | None = None
        self.reload()

    def reload(self) -> bool:
        """Load the files if they changed since the last load; True when they were loaded."""
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return False
        try:
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as e:
            raise SettingsError(
                f"cannot load the webhook's certificate {self.cert_file} / {self.key_file}: {e}. "
                "The chart mounts them from the webhook TLS Secret (self-signed, or cert-manager's "
                "when certManager.enabled); check that the Secret exists and holds tls.crt and "
                "tls.key"
            ) from e
        self._stamp = stamp
        return True

    def _files_stamp(self) -> tuple[object, ...]:
        stamp: list[object] = []
        for path in (self.cert_file, self.key_file):
            try:
                st = os.stat(path)  # follows kubelet's ..data symlink swap
            except OSError:
                stamp.append(None)
            else:
                stamp.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(stamp)


SETTINGS: Final = web.AppKey("settings", WebhookSettings)
SOURCE: Final = web.AppKey("source", SecretSource)


def build_app(settings: WebhookSettings, source: SecretSource) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[SOURCE] = source
    app.router.add_post("/inject/namespace", _inject_namespace)
    app.router.add_post("/inject/pod", _inject_pod)
    app.router.add_post("/inject", _inject_pod)
    app.router.add_get("/healthz", _healthz)
    return app


async def _inject_namespace(request: web.Request) -> web.Response:
    return await _inject(request, namespace_selected=True)


async def _inject_pod(request: web.Request) -> web.Response:
    return await _inject(request, namespace_selected=False)


async def _inject(request: web.Request, *, namespace_selected: bool) -> web.Response:
    try:
        body = json.loads(await request.read())
        answer = await review.answer(body, settings=request.app[SETTINGS],
                                     source=request.app[SOURCE],
                                     namespace_selected=namespace_selected)
    except (ValueError, review.BadReview) as e:
        logger.warning("rejected a request that is not an AdmissionReview: %s", e)
        return web.json_response({"error": f"not an AdmissionReview: {e}"}, status=400)
    return web.json_response(answer)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


class WebhookServer:
    """The HTTPS site plus the certificate watcher; `start()` then `stop()`."""

    def __init__(self, settings: WebhookSettings, source: SecretSource) -> None:
        self.settings = settings
        self.source = source
        self.certificate: ReloadingCertificate | None = None
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        s = self.settings
        self.certificate = ReloadingCertificate(s.cert_file, s.key_file)
        self._runner = web.AppRunner(build_app(s, self.source), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.host, s.port, ssl_context=self.certificate.context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the bound port (tests ask for 0)
        self._watch = asyncio.create_task(self._watch_certificate())
        logger.info("vpipe injection webhook listening on https://%s:%d", s.host, self.port)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _watch_certificate(self) -> None:
        assert self.certificate is not None
        while True:
            await asyncio.sleep(self.settings.cert_reload_interval)
            try:
                if self.certificate.reload():
                    logger.info("reloaded the webhook certificate %s", self.certificate.cert_file)
            except SettingsError as e:  # mid-rotation or removed: keep serving the old one
                logger.warning("%s; still serving the previous certificate", e)


async def run_webhook(settings: WebhookSettings, credentials: Credentials, *,
                      source: SecretSource | None = None) -> None:
    """Serve AdmissionReviews until cancelled; then keep answering `shutdown_delay` seconds.

    `credentials` reach the API server for the namespaces' vpipe-config ConfigMaps (the
    operator's own; the webhook needs `get configmaps`). `source` replaces that lookup (tests).
    """
    own: ConfigMapSecretSource | None = None
    if source is None:
        own = source = ConfigMapSecretSource(credentials, timeout=settings.lookup_timeout)
    server = WebhookServer(settings, source)
    await server.start()
    try:
        await asyncio.Event().wait()
    finally:
        # Cancelled (SIGTERM): the endpoint is only now being removed from the Service, so
        # reviews still arrive for a moment; answering them beats an uninjected pod.
        if settings.shutdown_delay:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(asyncio.sleep(settings.shutdown_delay))
        await server.stop()
        if own is not None:
            await own.close()
