"""HTTP providers (`openai-chat`, `anthropic-messages`) over pooled keep-alive connections.

The provider is protocol-agnostic on the wire: the path comes with the call (set by the front end,
or by an llmswitch), the family decides how the key is sent. The client's bytes are forwarded
untouched unless the model name is mapped, and streams are passed through chunk by chunk.
Upstream failures become ProxyErrors with the upstream status and a short reason; the
credential is only ever placed in the outgoing request header.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import orjson

import vpipe_proxy.upstream_client as upstream_client
from vpipe_api.document import ProviderConfig
from vpipe_api.patterns import ModelMap
from vpipe_api.protocols import provider_accepts
from vpipe_proxy.credentials import resolve_secret
from vpipe_proxy.errors import ConfigLoadError, ProxyError
from vpipe_proxy.modules import Call, Health, Reply
from vpipe_proxy.redact import client_keys, redact_bytes, redact_text, secrets_of
from vpipe_proxy.sse import EventCutter, EventTooLarge

# Upstream statuses that are about the client's request: the client sees them as they are.
_PASS_THROUGH = frozenset({400, 404, 409, 413, 415, 422, 429})
_FORWARDED_CLIENT_HEADERS = ("x-request-id", "openai-organization", "openai-project")
# Anthropic refuses beta fields (e.g. Claude Code's context_management) without their flag.
_FORWARDED_TO_ANTHROPIC = (*_FORWARDED_CLIENT_HEADERS, "anthropic-beta")
_USER_AGENT = ("user-agent", "vpipe")


class HTTPProvider:
    """Calls an upstream API over HTTP for whatever call reaches it."""

    def __init__(
        self,
        key: str,
        config: ProviderConfig,
        *,
        secrets_dir: str,
        environ: Mapping[str, str],
        warm_connections: int = 1,
        max_body_bytes: int = 0,
        max_event_bytes: int = 0,
    ) -> None:
        if config.base_url is None:
            raise ConfigLoadError(f"provider {key}: family {config.family} needs a baseUrl")
        self.key = key
        self.config = config
        self.protocol = config.protocol
        self.accepts = provider_accepts(config.protocol)
        self.health = Health(detail={"family": config.family, "baseUrl": config.base_url})
        self._models = ModelMap(config.model_map)
        self._secrets_dir = secrets_dir
        self._environ = environ
        self._warm = warm_connections
        self._where = f"{config.family} upstream {urlsplit(config.base_url).netloc}"
        t = config.timeouts
        self._pool = upstream_client.UpstreamPool(
            config.base_url,
            max_connections=config.max_connections,
            timeouts=upstream_client.Timeouts(connect=t.connect, first_byte=t.first_byte,
                                              total=t.total),
        )
        self._headers: list[tuple[str, str]] = []
        self._secrets: tuple[str, ...] = ()
        self._max_body = max_body_bytes
        self._max_event = max_event_bytes

    async def start(self) -> None:
        headers = [("content-type", "application/json"), _USER_AGENT]
        if self.config.credentials is not None:
            secret = resolve_secret(self.config.credentials, self._secrets_dir, self._environ)
            headers.append(_auth_header(self.config.auth, secret))
            self._secrets = secrets_of([secret])
        headers += list(self.config.headers.items())
        self._headers = headers
        if self._warm:
            try:
                await self._pool.warm(self._warm)
            except upstream_client.UpstreamError as e:
                raise ConfigLoadError(
                    f"provider {self.key}: warm-up failed: {e} (set VPIPE_WARM_CONNECTIONS=0 "
                    "to start without a reachable upstream)"
                ) from e

    def pool_stats(self) -> dict[str, int]:
        return self._pool.stats()

    async def close(self) -> None:
        await self._pool.close()

    async def call(self, call: Call) -> Reply:
        body = call.raw
        mapped, key = self._models.lookup(call.model)
        if key is not None or not body:
            call.body["model"] = mapped
            body = orjson.dumps(call.body)
        headers = self._headers
        names = _FORWARDED_TO_ANTHROPIC if self.protocol == "anthropic-messages" \
            else _FORWARDED_CLIENT_HEADERS
        forwarded = [(h, v) for h in names if (v := call.headers.get(h))]
        if forwarded:
            _check_forwarded(forwarded)
            headers = headers + forwarded
        try:
            response = await self._pool.request("POST", call.endpoint, headers, body)
        except upstream_client.UpstreamError as e:
            raise self._failure(e, call) from e
        if response.status != 200:
            return await self._error_reply(response, call)
        content_type = response.header("content-type") or "application/json"
        if call.stream and content_type.startswith("text/event-stream"):
            self.health.record(True)
            return Reply(200, chunks=self._relay(response, call), content_type=content_type,
                         release=response.release)
        try:
            data = await response.read(self._max_body)
        except upstream_client.UpstreamError as e:
            response.release()
            raise self._failure(e, call) from e
        response.release()
        secrets = self._secrets_for(call)
        data = redact_bytes(data, secrets)
        problem = _not_an_answer(data)
        if problem is not None:
            self.health.record(False, "HTTP 200 without an answer")
            raise ProxyError(502, "upstream_error",
                             f"{self._where} answered 200 {problem} for pipeline "
                             f"'{call.pipeline}'",
                             headers={"x-vpipe-upstream-status": "200"})
        self.health.record(True)
        return Reply(200, body=data, content_type=content_type)

    def _secrets_for(self, call: Call) -> tuple[str, ...]:
        """The provider's key and the client's own: neither may leave in an upstream's bytes."""
        client = client_keys(call.headers)
        return self._secrets + secrets_of(client) if client else self._secrets

    async def _relay(
        self, response: upstream_client.UpstreamResponse, call: Call
    ) -> AsyncIterator[bytes]:
        secrets = self._secrets_for(call)
        cutter = EventCutter(self._max_event) if self._max_event else None
        try:
            async for chunk in response.iter_chunks():
                if cutter is not None:
                    try:
                        chunk = cutter.feed(chunk)
                    except EventTooLarge:
                        self.health.record(False, "oversized stream event")
                        raise ProxyError(
                            502, "upstream_event_too_large",
                            f"pipeline '{call.pipeline}', {self._where}: one stream event "
                            f"exceeds {self._max_event} bytes (VPIPE_MAX_SSE_EVENT_BYTES)"
                        ) from None
                    if not chunk:
                        continue
                # Whole events only (with the cutter), so an echoed key is never split.
                yield redact_bytes(chunk, secrets)
            if cutter is not None and (rest := cutter.rest()):
                yield redact_bytes(rest, secrets)
        except upstream_client.UpstreamError as e:
            raise self._failure(e, call) from e
        finally:
            response.release()

    async def _error_reply(self, response: upstream_client.UpstreamResponse, call: Call) -> Reply:
        try:
            data = await response.read(self._max_body)
        except upstream_client.UpstreamError:
            data = b""
        finally:
            response.release()
        status = response.status
        secrets = self._secrets_for(call)
        data = redact_bytes(data, secrets)
        headers = {"x-vpipe-upstream-status": str(status)}
        if (retry := response.header("retry-after")) is not None:
            headers["retry-after"] = redact_text(retry, secrets)
        if status in _PASS_THROUGH:
            self.health.record(True)
            if _is_error_body(data, call.protocol):
                return Reply(status, body=data, headers=headers)
            raise ProxyError(status, "upstream_rejected",
                             f"{self._where} answered {status}: {_reason(data, secrets)}",
                             headers=headers)
        self.health.record(False, f"HTTP {status}")
        if status in (401, 403):
            message = (f"{self._where} rejected the proxy's credentials ({status}) for pipeline "
                       f"'{call.pipeline}': check the Secret its credentials.secretRef names")
        else:
            message = (f"{self._where} failed with {status} for pipeline '{call.pipeline}': "
                       f"{_reason(data, secrets)}")
        raise ProxyError(502, "upstream_error", message, headers=headers)

    def _failure(self, error: upstream_client.UpstreamError, call: Call) -> ProxyError:
        self.health.record(False, type(error).__name__)
        context = f"pipeline '{call.pipeline}', {self._where}"
        if isinstance(error, upstream_client.UpstreamTimeout):
            limit = {"first_byte": "timeouts.firstByte", "total": "timeouts.total"}[error.phase]
            return ProxyError(504, "upstream_timeout",
                              f"{context}: {error} (raise the provider's {limit} if the model "
                              "is slow)")
        if isinstance(error, upstream_client.UpstreamConnectError):
            if error.timeout:
                return ProxyError(504, "upstream_connect_timeout", f"{context}: {error}")
            return ProxyError(502, "upstream_unreachable", f"{context}: {error}")
        return ProxyError(502, "upstream_protocol_error", f"{context}: {error}")


def _auth_header(scheme: str, secret: str) -> tuple[str, str]:
    if scheme == "bearer":
        return ("authorization", f"Bearer {secret}")
    if scheme in ("api-key", "x-api-key"):
        return (scheme, secret)
    raise ConfigLoadError(f"unknown auth scheme {scheme!r}")


def _is_error_body(data: bytes, protocol: str) -> bool:
    """An error object in `protocol`'s shape: both nest {message, ...} under "error", and
    Anthropic's says "type": "error" beside it. Only such a body passes through as it is."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(parsed, dict):
        return False
    error = parsed.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return False
    return protocol != "anthropic-messages" or parsed.get("type") == "error"


def _not_an_answer(data: bytes) -> str | None:
    """Why a 200 body is no answer (not a JSON object; an error object, which some upstreams
    send with 200), or None. One orjson parse: microseconds for a usual reply."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return "with a body that is not JSON"
    if not isinstance(parsed, dict):
        return f"with a JSON {type(parsed).__name__} instead of an object"
    error = parsed.get("error")
    if isinstance(error, (dict, str)) or parsed.get("type") == "error":
        return "with an error: " + _reason(data)
    return None


def _check_forwarded(headers: list[tuple[str, str]]) -> None:
    """Client header values sent on upstream must be header-safe: a bad one is the client's
    fault (400), not the upstream's."""
    for name, value in headers:
        if "\r" in value or "\n" in value or not _latin1(value):
            raise ProxyError(400, "invalid_header",
                             f"header {name} holds characters that cannot be sent on (line "
                             "breaks or non-latin-1); send plain ASCII.", param=name)


def _latin1(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _reason(data: bytes, secrets: tuple[str, ...] = (), limit: int = 200) -> str:
    """A short reason from an upstream error body, never the whole payload."""
    try:
        parsed = orjson.loads(data)
        if isinstance(parsed, dict):
            error = parsed.get("error")
            message = error.get("message") if isinstance(error, dict) else error
            if message:
                data = str(message).encode()
    except orjson.JSONDecodeError:
        pass
    text = redact_text(data.decode("utf-8", "replace").strip(), secrets) or "empty body"
    return text if len(text) <= limit else text[:limit] + "..."
