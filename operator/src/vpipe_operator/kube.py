"""A small typed REST client for the few Kubernetes API calls the operator makes.

kopf watches; this client reads and writes: list Pipelines/Routes, get/create/patch/delete the
`vpipe-config` ConfigMap, get Secrets (key names only), list the proxies' Pods, merge-patch CR
status, create Events.
Writes are JSON merge patches (`application/merge-patch+json`), which need no resourceVersion
dance and are what kmock emulates. Every response goes through `_request`, the one place that
turns HTTP failures into the `errors` hierarchy (404, 409, 429 with Retry-After, 5xx, network).

It must not log or return Secret values: `secret_keys` drops them before returning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final

import aiohttp
import orjson

from vpipe_operator import errors
from vpipe_operator.credentials import Credentials

JSON = dict[str, Any]
USER_AGENT: Final = "vpipe-operator/0.1"
MERGE_PATCH: Final = "application/merge-patch+json"
LIST_CHUNK: Final = 500  # items per list page; 1,000 Routes are two requests
OPERATOR_ADVICE: Final = ("the operator's identity may not {verb} {path}: grant the verb in its "
                          "ClusterRole (operator/rbac/clusterrole.yaml) or fix its credentials")


@dataclasses.dataclass(frozen=True)
class Resource:
    """One API resource: where it lives on the API server."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str | None = None,
             subresource: str | None = None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [root]
        if namespace is not None:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name is not None:
            parts.append(name)
        if subresource is not None:
            parts.append(subresource)
        return "/".join(parts)


PIPELINES: Final = Resource("vpipe.io", "v1alpha1", "pipelines", "Pipeline")
ROUTES: Final = Resource("vpipe.io", "v1alpha1", "routes", "Route")
CONFIGMAPS: Final = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS: Final = Resource("", "v1", "secrets", "Secret")
EVENTS: Final = Resource("", "v1", "events", "Event")
PODS: Final = Resource("", "v1", "pods", "Pod")


class KubeClient:
    """Kubernetes API calls over one aiohttp session; use as `async with KubeClient(...)`."""

    def __init__(self, credentials: Credentials, *, timeout: float = 30.0,
                 user_agent: str = USER_AGENT, forbidden_advice: str = OPERATOR_ADVICE) -> None:
        self._credentials = credentials
        self._user_agent = user_agent
        self._forbidden_advice = forbidden_advice
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def list(self, resource: Resource, namespace: str, *,
                   label_selector: str | None = None) -> list[JSON]:
        """Every object of `resource` in `namespace`, following `continue` pages."""
        items: list[JSON] = []
        selector = {"labelSelector": label_selector} if label_selector else {}
        params: dict[str, str] = {"limit": str(LIST_CHUNK), **selector}
        while True:
            page = await self._request("GET", resource.path(namespace), params=params)
            items += [item for item in page.get("items") or [] if isinstance(item, dict)]
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            params = {"limit": str(LIST_CHUNK), "continue": str(token), **selector}

    async def get(self, resource: Resource, namespace: str, name: str) -> JSON | None:
        """The object, or None when it does not exist."""
        try:
            return await self._request("GET", resource.path(namespace, name))
        except errors.NotFound:
            return None

    async def create(self, resource: Resource, namespace: str, body: JSON) -> JSON:
        return await self._request("POST", resource.path(namespace), body=body)

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: JSON,
        *, subresource: str | None = None,
    ) -> JSON:
        """JSON merge patch: maps merge, lists and scalars replace, None deletes a key."""
        return await self._request("PATCH", resource.path(namespace, name, subresource),
                                   body=patch, content_type=MERGE_PATCH)

    async def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        """Delete; False when it was already gone."""
        try:
            await self._request("DELETE", resource.path(namespace, name))
        except errors.NotFound:
            return False
        return True

    async def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        """The key names of a Secret (values are dropped here), or None when it is missing."""
        secret = await self.get(SECRETS, namespace, name)
        if secret is None:
            return None
        keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
        del secret  # the values go no further than this function
        return frozenset(keys)

    async def _request(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None,
        body: JSON | None = None, content_type: str = "application/json",
    ) -> JSON:
        session = self._ensure_session()
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        token = self._credentials.current_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data: bytes | None = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = content_type
        url = self._credentials.server + path
        try:
            async with session.request(method, url, params=params, data=data, headers=headers,
                                       proxy=self._credentials.proxy) as response:
                raw = await response.read()
                if response.status < 300:
                    parsed = orjson.loads(raw) if raw else {}
                    return parsed if isinstance(parsed, dict) else {}
                raise classify(method, path, response.status, raw,
                               response.headers.get("Retry-After"), self._forbidden_advice)
        except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as e:
            raise errors.ApiUnreachable(
                method, path, 0, type(e).__name__, str(e) or "no details",
                f"API server {self._credentials.server}, credentials from "
                f"{self._credentials.origin}",
            ) from e

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            ssl_context = self._credentials.ssl_context()
            connector = aiohttp.TCPConnector(ssl=ssl_context if ssl_context is not None else False)
            auth = None
            if self._credentials.username is not None and self._credentials.password is not None:
                auth = aiohttp.BasicAuth(self._credentials.username, self._credentials.password)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout,
                                                  auth=auth)
        return self._session


VERBS: Final = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update",
                "DELETE": "delete"}


def classify(
    method: str, path: str, status: int, raw: bytes, retry_after: str | None,
    forbidden_advice: str = OPERATOR_ADVICE,
) -> errors.ApiError:
    """The one mapping from an HTTP failure to the operator's exception hierarchy.

    `forbidden_advice` (with {verb} and {path}) says whose rights are missing and where to grant
    them: the operator's ClusterRole, or for the CLI the user's own RBAC.
    """
    reason, message = _status_text(raw)
    delay = _retry_after(retry_after)
    if status in (401, 403):
        verb = VERBS.get(method, method.lower())
        return errors.Forbidden(method, path, status, reason, message,
                                forbidden_advice.format(verb=verb, path=path))
    if status == 404:
        return errors.NotFound(method, path, status, reason, message)
    if status == 409:
        return errors.Conflict(method, path, status, reason, message, delay=delay)
    if status == 429:
        return errors.TooManyRequests(method, path, status, reason, message, delay=delay)
    if status >= 500:
        return errors.ServerError(method, path, status, reason, message, delay=delay)
    return errors.PermanentApiError(method, path, status, reason, message)


def _status_text(raw: bytes) -> tuple[str, str]:
    """Reason and message of a Kubernetes `Status` body, or the raw text."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "Error", raw.decode(errors="replace")
    if isinstance(body, dict):
        return str(body.get("reason") or "Error"), str(body.get("message") or "")
    return "Error", str(body)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from the API server; the caller backs off instead
