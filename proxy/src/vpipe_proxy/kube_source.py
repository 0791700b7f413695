"""The `kubernetes` config source: watch the namespace's `vpipe-config` ConfigMap through the API.

A change reaches the proxy as soon as the API server sends the watch event (sub-second), where
the mounted-file source waits for the kubelet's sync (up to a minute or more). It needs a
service account allowed to get, list and watch that one ConfigMap (proxy/rbac/). Credentials
are the pod's service account; VPIPE_KUBE_SERVER (and optionally VPIPE_KUBE_TOKEN_FILE,
VPIPE_KUBE_CA_FILE) point it elsewhere, e.g. at a test API server. It never logs the token.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from vpipe_api.document import CONFIGMAP_KEY, CONFIGMAP_NAME, ConfigDocument, parse_document
from vpipe_proxy.errors import ConfigLoadError
from vpipe_proxy.sources import Fingerprint
from vpipe_proxy.supervise import Supervisor

log = logging.getLogger(__name__)

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
WATCH_SECONDS = 300  # server-side watch timeout; the watch is simply re-opened after it
RETRY_SECONDS = 1.0


class KubernetesConfigSource:
    """The ConfigMap as the API server last reported it, kept current by a watch."""

    def __init__(self, namespace: str, server: str, *, token_file: str | None = None,
                 ca_file: str | None = None) -> None:
        self.namespace = namespace
        self.server = server.rstrip("/")
        self.description = f"ConfigMap {namespace}/{CONFIGMAP_NAME} via {self.server}"
        self.changed = asyncio.Event()
        self._token_file = token_file
        self._ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ca_file) if ca_file else True)
        self._data: Mapping[str, str] | None = None
        self._version = ""
        self._updates = 0  # bumped on every change seen; resourceVersions are opaque
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._first_watch = True

    @classmethod
    def from_environ(cls, namespace: str | None, environ: Mapping[str, str]) -> KubernetesConfigSource:
        """In a pod: the service account; elsewhere VPIPE_KUBE_SERVER and friends."""
        server = environ.get("VPIPE_KUBE_SERVER")
        token = environ.get("VPIPE_KUBE_TOKEN_FILE")
        ca = environ.get("VPIPE_KUBE_CA_FILE")
        if server is None:
            host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
            if not host:
                raise ConfigLoadError("--source kubernetes needs the pod's service account "
                                      "(KUBERNETES_SERVICE_HOST) or VPIPE_KUBE_SERVER")
            server = f"https://{host}:{port or 443}"
            token = token or str(SERVICE_ACCOUNT / "token")
            ca = ca or str(SERVICE_ACCOUNT / "ca.crt")
        if namespace is None:
            try:
                namespace = (SERVICE_ACCOUNT / "namespace").read_text().strip()
            except OSError:
                raise ConfigLoadError("--source kubernetes needs --namespace outside a pod") from None
        return cls(namespace, server, token_file=token, ca_file=ca)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "vpipe-proxy"}
        if self._token_file:
            # Re-read every time: projected service-account tokens rotate.
            token = Path(self._token_file).read_text().strip()
            headers["Authorization"] = f"Bearer {token}"
        return headers

    @property
    def _base(self) -> str:
        return f"{self.server}/api/v1/namespaces/{self.namespace}/configmaps"

    async def start(self, supervisor: Supervisor) -> None:
        """Read the ConfigMap once, then keep watching it in the background."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None,
                                                                             sock_connect=10))
        try:
            await self._read()
        except (aiohttp.ClientError, OSError) as e:
            await self.close()
            raise ConfigLoadError(f"cannot read {self.description}: {e}") from e
        self._task = supervisor.keep_running("configmap-watch", self._watch_forever)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _read(self) -> None:
        assert self._session is not None
        async with self._session.get(f"{self._base}/{CONFIGMAP_NAME}", headers=self._headers(),
                                     ssl=self._ssl) as response:
            if response.status == 404:
                self._set(None, "")
                return
            if response.status != 200:
                raise ConfigLoadError(f"{self.description}: the API answered {response.status}: "
                                      f"{(await response.text())[:200]} (does the service "
                                      "account have get/list/watch on it? see proxy/rbac/)")
            body = await response.json(loads=orjson.loads)
        self._set(body.get("data") or {}, body["metadata"].get("resourceVersion", ""))

    def _set(self, data: Mapping[str, str] | None, version: str) -> None:
        if (data, version) != (self._data, self._version):
            self._data, self._version = data, version
            self._updates += 1
            self.changed.set()

    async def _watch_forever(self) -> None:
        """Watch, and after a failure re-read and watch again; what this does not handle ends
        it, and the supervisor logs, counts and restarts it."""
        if not self._first_watch:  # restarted by the supervisor: what did we miss?
            await self._read()
        self._first_watch = False
        while True:
            try:
                await self._watch()
            except (aiohttp.ClientError, OSError, ConfigLoadError, ValueError) as e:
                # The API went away or answered nonsense: say so, re-read, watch again.
                log.warning("watch of %s failed (%s); retrying in %.0f s", self.description, e,
                            RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)
                with contextlib.suppress(aiohttp.ClientError, OSError, ConfigLoadError, ValueError):
                    await self._read()

    async def _watch(self) -> None:
        assert self._session is not None
        params = {"watch": "true", "fieldSelector": f"metadata.name={CONFIGMAP_NAME}",
                  "timeoutSeconds": str(WATCH_SECONDS), "allowWatchBookmarks": "true"}
        if self._version:
            params["resourceVersion"] = self._version
        async with self._session.get(self._base, params=params, headers=self._headers(),
                                     ssl=self._ssl) as response:
            if response.status != 200:
                raise ConfigLoadError(f"watch answered {response.status}")
            events = WatchDecoder()
            async for chunk in response.content.iter_any():
                for event in events.feed(chunk):
                    self._on_event(event)

    def _on_event(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        version = (obj.get("metadata") or {}).get("resourceVersion", self._version)
        if kind in ("ADDED", "MODIFIED"):
            self._set(obj.get("data") or {}, version)
        elif kind == "DELETED":
            self._set(None, version)
        elif kind == "BOOKMARK":
            self._version = version
        elif kind == "ERROR":  # e.g. 410 Gone: the version is too old; re-list from scratch
            self._version = ""
            raise ConfigLoadError(f"watch error: {obj.get('message', obj)}")

    def fingerprint(self) -> Fingerprint:
        return (self._updates,)

    def load(self) -> ConfigDocument:
        if self._data is None:
            raise ConfigLoadError(f"{self.description} does not exist yet: the operator writes "
                                  "it once the namespace has valid Pipelines and Routes")
        raw = self._data.get(CONFIGMAP_KEY)
        if raw is None:
            raise ConfigLoadError(f"{self.description} has no {CONFIGMAP_KEY} key")
        return parse_document(raw)



class WatchDecoder:
    """Watch events from a byte stream: one JSON object after another. The API server ends each
    with a newline; the decoder does not rely on it (some servers, kmock among them, do not)."""

    def __init__(self) -> None:
        self._buffer = ""
        self._json = json.JSONDecoder()
        self._utf8 = codecs.getincrementaldecoder("utf-8")()

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        self._buffer += self._utf8.decode(chunk)
        events: list[dict[str, Any]] = []
        while True:
            text = self._buffer.lstrip()
            if not text:
                self._buffer = ""
                return events
            try:
                event, end = self._json.raw_decode(text)
            except json.JSONDecodeError:
                self._buffer = text  # incomplete: wait for the rest
                return events
            self._buffer = text[end:]
            if isinstance(event, dict):
                events.append(event)
