"""Which Secrets a namespace's proxies need: the credentials its rendered config references.

The webhook mounts each of them into the injected pod (kubelet reads Secrets; the pod's own
service account needs no Secret access). At admission time the cheapest authoritative answer is
the namespace's `vpipe-config` ConfigMap, which the operator renders from every Pipeline there:
one GET by name, no list of Pipelines, no watch. Its provider instances carry
`credentials: {name, key}`; the names are what we mount.

- `secret_names_in(config_json)` is the pure part (lenient: the proxy, not the webhook, judges
  the document; a newer `configVersion` still yields its references);
- `SecretSource` is the seam: the server takes any object with `secret_names(namespace)`;
- `ConfigMapSecretSource` is the real one: aiohttp against the API server with the operator's
  credentials, and a short cache so a Deployment scaled to 500 replicas costs a few GETs.

A namespace without the ConfigMap (no Pipelines yet) needs no Secrets: that is `()`, not an
error. Every other failure raises `SecretLookupError`, which the server turns into "allowed,
not injected, with a warning".
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

import aiohttp

from vpipe_operator.credentials import Credentials
from vpipe_operator.errors import OperatorError, truncate

CONFIGMAP_NAME: Final = "vpipe-config"  # vpipe_api.document.CONFIGMAP_NAME
CONFIGMAP_KEY: Final = "config.json"  # vpipe_api.document.CONFIGMAP_KEY


class SecretLookupError(OperatorError):
    """The namespace's vpipe-config ConfigMap could not be read or understood."""


class SecretSource(Protocol):
    """Where the webhook learns which Secrets to mount into a namespace's pods."""

    async def secret_names(self, namespace: str) -> tuple[str, ...]:
        """Sorted, distinct Secret names; raise `SecretLookupError` when it cannot tell."""
        ...


def secret_names_in(config_json: str | bytes) -> tuple[str, ...]:
    """Secret names referenced by the provider instances of a rendered config document."""
    try:
        document = json.loads(config_json)
    except ValueError as e:
        raise SecretLookupError(f"{CONFIGMAP_NAME}/{CONFIGMAP_KEY} is not valid JSON: {e}") from e
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, dict):
        raise SecretLookupError(f"{CONFIGMAP_NAME}/{CONFIGMAP_KEY} has no instances object")
    names: set[str] = set()
    for instance in instances.values():
        config = instance.get("config") if isinstance(instance, dict) else None
        credentials = config.get("credentials") if isinstance(config, dict) else None
        if isinstance(credentials, dict) and isinstance(credentials.get("name"), str):
            names.add(credentials["name"])
    return tuple(sorted(names))


class ConfigMapSecretSource:
    """`SecretSource` reading `vpipe-config` from the API server (GET by name, cached briefly)."""

    def __init__(self, credentials: Credentials, *, timeout: float = 2.0, ttl: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.credentials = credentials
        self.timeout = timeout
        self.ttl = ttl
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._cache: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._inflight: dict[str, asyncio.Task[tuple[str, ...]]] = {}

    async def secret_names(self, namespace: str) -> tuple[str, ...]:
        cached = self._cache.get(namespace)
        if cached is not None and self.clock() - cached[0] < self.ttl:
            return cached[1]
        task = self._inflight.get(namespace)
        if task is None:  # pods of one ReplicaSet arrive together: one GET serves them all
            task = asyncio.create_task(self._fetch_and_cache(namespace))
            self._inflight[namespace] = task
            task.add_done_callback(lambda t: self._done(namespace, t))
        # shield: a requester that goes away (the API server gave up) leaves the GET running
        # for the others.
        return await asyncio.shield(task)

    def _done(self, namespace: str, task: asyncio.Task[tuple[str, ...]]) -> None:
        self._inflight.pop(namespace, None)
        if not task.cancelled():
            task.exception()  # retrieved here: each waiter re-raises it, nobody else must

    async def _fetch_and_cache(self, namespace: str) -> tuple[str, ...]:
        names = await self._fetch(namespace)
        self._cache[namespace] = (self.clock(), names)
        return names

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _fetch(self, namespace: str) -> tuple[str, ...]:
        path = f"/api/v1/namespaces/{namespace}/configmaps/{CONFIGMAP_NAME}"
        try:
            async with self._client().get(self.credentials.server + path,
                                          headers=self._headers()) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise SecretLookupError(
                f"GET {path} on {self.credentials.server} failed: {type(e).__name__}: {e}"
            ) from e
        if status == 404:
            return ()
        if status != 200:
            hint = (" (the webhook's service account needs `get` on configmaps)"
                    if status in (401, 403) else "")
            raise SecretLookupError(
                f"GET {path} answered {status}{hint}: {truncate(body.decode(errors='replace'))}")
        try:
            configmap: Any = json.loads(body)
        except ValueError as e:
            raise SecretLookupError(f"GET {path} answered something other than JSON") from e
        data = configmap.get("data") if isinstance(configmap, dict) else None
        raw = data.get(CONFIGMAP_KEY) if isinstance(data, dict) else None
        if not isinstance(raw, str):
            return ()  # not rendered by the operator (or emptied): nothing to mount
        return secret_names_in(raw)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            context = self.credentials.ssl_context()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context if context is not None else False),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                auth=(aiohttp.BasicAuth(self.credentials.username, self.credentials.password or "")
                      if self.credentials.username else None),
            )
        return self._session

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self.credentials.current_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers
