"""The client API: OpenAI /v1/chat/completions, /v1/embeddings, /v1/models; Anthropic /v1/messages.

Handlers only pump bytes: parse the body once, ask the router, run the chain, write the reply.
Every failure is answered in the caller's protocol (OpenAI- or Anthropic-shaped error) with
the right status. Routes may carry a
front-door path prefix (/team-a/v1/...), which the router matches against `pathPrefix`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from vpipe_proxy import content_encoding, shapes
from vpipe_proxy.errors import ProxyError, anthropic_body, bad_request, internal_error
from vpipe_proxy.llmswitch.anthropic_openai import TOOL_ARGUMENTS_INVALID, UNSUPPORTED_FIELD
from vpipe_proxy.llmswitch.field_policy import DROPPED_HEADER
from vpipe_proxy.metrics import UNROUTED
from vpipe_proxy.modules import Call, Reply
from vpipe_proxy.routing import CompiledRoute
from vpipe_proxy.shadow import V1Stream, summarize
from vpipe_proxy.splitter import (
    V1,
    V2,
    VERSION_HEADER,
    bucket,
    client_key,
    in_canary,
    pinned_version,
    sticky_key,
)
from vpipe_proxy.state import STATE, ProxyState
from vpipe_proxy.threads import CONVERSATION, RESPONSE, ResponseIdSniffer, Thread, response_id, thread_of

log = logging.getLogger(__name__)

_JSON = "application/json"
# Error codes that signal translation trouble, by the `kind` label they are counted under.
TRANSLATION_KINDS = {
    UNSUPPORTED_FIELD: "unmapped_field",
    TOOL_ARGUMENTS_INVALID: "tool_args_invalid",
    "upstream_protocol_error": "conversion_error",
}
CLIENT_CLOSED = 499
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no"}


def _openai_error(error: ProxyError) -> bytes:
    return error.openai_body()


@dataclass(frozen=True)
class Dialect:
    """What differs between client protocols at the edge: input checks and error shapes."""

    protocol: str
    endpoint: str  # the provider path when the provider speaks this protocol natively
    check: Callable[[dict[str, Any]], bool]  # validates the body; returns whether it streams
    error_body: Callable[[ProxyError], bytes]
    stream_error: Callable[[ProxyError], bytes]  # in-band error once a stream has started
    native_only: bool = False  # only a provider speaking `protocol` itself can answer


def error_response(error: ProxyError, dialect: Dialect | None = None) -> web.Response:
    body = (dialect or OPENAI_CHAT).error_body(error)
    return web.Response(status=error.status, body=body, content_type=_JSON, headers=error.headers)


async def _read_json(request: web.Request, limit: int,
                     body_seconds: float) -> tuple[dict[str, Any], bytes]:
    if request.content_length is not None and request.content_length > limit:
        raise ProxyError(413, "request_too_large",
                         f"Request body is {request.content_length} bytes; this proxy accepts "
                         f"at most {limit} (VPIPE_MAX_BODY_BYTES). Send a smaller request.")
    try:
        if request.content.is_eof() or not body_seconds:
            raw = await request.read()  # the usual small body came with the head: no timer
        else:
            async with asyncio.timeout(body_seconds):
                raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ProxyError(413, "request_too_large",
                         f"Request body exceeds {limit} bytes (VPIPE_MAX_BODY_BYTES). Send a "
                         "smaller request.") from None
    except TimeoutError:
        raise ProxyError(408, "request_timeout",
                         f"The request body did not arrive within {body_seconds:g}s "
                         "(VPIPE_CLIENT_BODY_TIMEOUT).",
                         headers={"Connection": "close"}) from None
    except (HttpProcessingError, RequestPayloadError) as e:
        # A body that does not frame as its Transfer-Encoding says.
        raise bad_request(f"The request body could not be read ({e}); check how it is framed.",
                          code="bad_body") from None
    if "Content-Encoding" in request.headers:
        raw = content_encoding.decode(raw, request.headers["Content-Encoding"], limit)
    if not raw:
        raise bad_request("Request body is empty; send a JSON object such as "
                          '{"model": "...", "messages": [...]}.')
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise bad_request(f"Request body is not valid JSON ({e}). Send a JSON object with "
                          "Content-Type: application/json.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request(f"Request body must be a JSON object, got {type(body).__name__}.")
    if shapes.may_be_too_deep(raw):
        shapes.check_depth(body)
    return body, raw


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise bad_request("'model' is required: name the model to call, e.g. "
                          '{"model": "gpt-4o-mini", ...}. GET /v1/models lists them.',
                          param="model", code="missing_model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request(f"'model' must be a non-empty string, got {orjson.dumps(model).decode()}.",
                          param="model", code="invalid_model")
    return model


def _responses_stream_error(error: ProxyError) -> bytes:
    event = {"type": "error", "code": error.code, "message": error.message,
             "param": error.param, "sequence_number": 0}
    return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"


OPENAI_CHAT = Dialect("openai-chat", "/chat/completions", shapes.check_chat, _openai_error,
                      lambda e: b"data: " + e.openai_body() + b"\n\n")
OPENAI_EMBEDDINGS = Dialect("openai-embeddings", "/embeddings", shapes.check_embeddings, _openai_error,
                            lambda e: b"data: " + e.openai_body() + b"\n\n")
ANTHROPIC_COUNT_TOKENS = Dialect(
    "anthropic-messages", "/messages/count_tokens", shapes.check_count_tokens, anthropic_body,
    lambda e: b"event: error\ndata: " + anthropic_body(e) + b"\n\n", native_only=True)
OPENAI_RESPONSES = Dialect("openai-responses", "/responses", shapes.check_responses, _openai_error,
                           _responses_stream_error)
ANTHROPIC_MESSAGES = Dialect("anthropic-messages", "/messages", shapes.check_messages, anthropic_body,
                             lambda e: b"event: error\ndata: " + anthropic_body(e) + b"\n\n")


async def _serve(request: web.Request, dialect: Dialect) -> web.StreamResponse:
    protocol = dialect.protocol
    state = request.app[STATE]
    started = time.perf_counter()
    runtime = state.reloader.current
    if runtime is None:
        return error_response(ProxyError(503, "not_ready", "The proxy has no valid config "
                                         "loaded yet; see the admin port's /readyz."), dialect)
    runtime.enter()
    route: CompiledRoute | None = None
    module = pipeline = version = UNROUTED
    status = 500
    try:
        body, raw = await _read_json(request, state.settings.max_body_bytes,
                                     state.settings.client_body_timeout)
        model = _model(body)
        stream = dialect.check(body)
        prefix = request.match_info.get("prefix", "")
        if prefix:
            prefix = "/" + prefix
        route = runtime.router.route(model, protocol, prefix, request.headers)
        if route is None:
            raise ProxyError(404, "model_not_found",
                             runtime.router.no_route_message(model, protocol, prefix,
                                                             request.headers), param="model")
        version, shadow, thread = _assign(route, body, request.headers, state, protocol)
        pipeline = route.canary.pipeline if version == V2 and route.canary else route.pipeline
        chain = runtime.chains[pipeline]
        module = chain.provider_name
        if dialect.native_only and protocol not in chain.provider.accepts:
            raise ProxyError(400, "unsupported_endpoint",
                             f"{request.path} is answered only by providers that speak {protocol}; "
                             f"pipeline '{pipeline}' ends in a provider speaking {chain.provider.protocol}",
                             param="model")
        copy = None
        if shadow and thread is not None:
            # V2's provider may not hold the thread, and a copy naming a conversation would
            # add its turn to the user's conversation a second time.
            state.shadow.skipped(route.name)
        elif shadow and route.canary is not None and not dialect.native_only:
            # Parsed again: providers may rewrite the body V1 gets (model mapping).
            copy = Call(protocol=protocol, endpoint=dialect.endpoint, body=orjson.loads(raw),
                        raw=raw, model=model, stream=stream, headers=request.headers,
                        route=route.name, pipeline=route.canary.pipeline)
        call = Call(protocol=protocol, endpoint=dialect.endpoint, body=body, raw=raw,
                    model=model, stream=stream, headers=request.headers, route=route.name,
                    pipeline=pipeline)
        reply = await chain.runners[protocol](call)
        status = reply.status
        if reply.headers and DROPPED_HEADER in reply.headers:
            state.metrics.fields_dropped(f"{protocol}->{chain.provider.protocol}",
                                         reply.headers[DROPPED_HEADER])
        if status == 200:
            if thread is not None and thread[0] == CONVERSATION:
                state.threads.pin(route.name, thread, pipeline)
            elif version == V2 and protocol == OPENAI_RESPONSES.protocol and reply.body:
                _pin_response(state, route.name, response_id(reply.body), pipeline)
        if reply.chunks is not None:
            tap = V1Stream(started) if copy is not None else None
            sniffer = (ResponseIdSniffer() if version == V2 and status == 200
                       and protocol == OPENAI_RESPONSES.protocol else None)
            try:
                streamed = await _write_stream(request, reply, route, pipeline, version, module,
                                               state, started, dialect, tap, sniffer)
            except BaseException:
                if tap is not None:
                    state.shadow.incomplete(route.name)
                raise
            if copy is not None and tap is not None:
                state.shadow.submit(runtime, runtime.chains[copy.pipeline].runners[protocol],
                                    copy, tap)
            return streamed
        if copy is not None:
            v1 = summarize(protocol, reply.status, time.perf_counter() - started, reply.body)
            state.shadow.submit(runtime, runtime.chains[copy.pipeline].runners[protocol], copy, v1)
        return web.Response(status=reply.status, body=reply.body,
                            headers=_headers(reply, route.name, pipeline, version))
    except ProxyError as e:
        status = e.status
        if route is not None:
            kind = TRANSLATION_KINDS.get(e.code)
            if kind is not None:
                state.metrics.translation_event(route.name, pipeline, kind)
            if status >= 500:
                state.metrics.upstream_error(pipeline, module, e.code)
        return error_response(e, dialect)
    except (ConnectionError, asyncio.CancelledError):
        # The client went away (handler cancelled, or its socket reset mid-stream): counted as
        # 499, nginx's "client closed request", never as a 5xx of the route or the upstream.
        status = CLIENT_CLOSED
        raise
    except Exception as e:  # the client gets JSON, the log the traceback
        status = 500
        log.exception("request on route %s, pipeline %s failed unexpectedly",
                      route.name if route else UNROUTED, pipeline)
        return error_response(internal_error(e), dialect)
    finally:
        runtime.exit()
        state.metrics.request_done(route.name if route else UNROUTED, pipeline, version, module,
                                   protocol, status, time.perf_counter() - started)


def _assign(route: CompiledRoute, body: dict[str, Any], headers: Mapping[str, str],
            state: ProxyState, protocol: str) -> tuple[str, bool, Thread | None]:
    """(version that answers, whether V2 also gets a shadow copy, the provider-side thread the
    request continues) for one request."""
    thread = thread_of(body) if protocol == OPENAI_RESPONSES.protocol else None
    canary = route.canary
    key: bytes | None
    if canary is None:
        return V1, False, thread
    if state.settings.allow_version_override:
        forced = headers.get(VERSION_HEADER)
        if forced is not None:
            if forced not in (V1, V2):
                raise bad_request(f"header {VERSION_HEADER} must be v1 or v2, got {forced!r}.")
            return forced, False, thread
    if thread is not None and canary.mode == "split":
        pinned = state.threads.get(route.name, thread)  # the pipeline that answered it
        # A response this proxy did not serve from the canary began on the stable pipeline; so
        # did a thread whose pipeline is no longer this route's canary (a new canary, or the
        # promoted one made stable in Git).
        if pinned is not None or thread[0] == RESPONSE:
            on = V2 if pinned == canary.pipeline else V1
            return pinned_version(on, canary.weight), False, thread
        key = client_key(body, headers, canary.stickiness_header) or (
            b"t:" + thread[1].encode())
    elif canary.weight == 0:
        return V1, False, thread
    else:
        key = sticky_key(body, headers, canary.stickiness_header)
    if not in_canary(bucket(route.name, key), canary.weight):
        return V1, False, thread
    return (V1, True, thread) if canary.mode == "shadow" else (V2, False, thread)


def _pin_response(state: ProxyState, route: str, rid: str | None, pipeline: str) -> None:
    """Remember that the canary `pipeline` answered response `rid`, so turns naming it stay
    there."""
    if rid is not None:
        state.threads.pin(route, (RESPONSE, rid), pipeline)


def _headers(reply: Reply, route: str, pipeline: str, version: str) -> dict[str, str]:
    headers = {"Content-Type": reply.content_type, "x-vpipe-route": route,
               "x-vpipe-pipeline": pipeline, VERSION_HEADER: version}
    if reply.headers:
        headers.update(reply.headers)
    return headers


async def _write_stream(request: web.Request, reply: Reply, route: CompiledRoute, pipeline: str,
                        version: str, module: str, state: ProxyState, started: float,
                        dialect: Dialect, tap: V1Stream | None = None,
                        sniffer: ResponseIdSniffer | None = None) -> web.StreamResponse:
    """Forward a stream as it comes; `tap` (shadow mode) keeps the bytes the client got,
    `sniffer` looks for the response id in them."""
    assert reply.chunks is not None
    response = web.StreamResponse(
        status=reply.status,
        headers={**_SSE_HEADERS, "x-vpipe-route": route.name, "x-vpipe-pipeline": pipeline,
                 VERSION_HEADER: version, **(reply.headers or {})},
    )
    chunks = reply.chunks
    try:
        await response.prepare(request)
        first = True
        try:
            async for chunk in chunks:
                if first:
                    elapsed = time.perf_counter() - started
                    state.metrics.stream_first_chunk(route.name, pipeline, elapsed)
                    if tap is not None:
                        tap.first_chunk = elapsed
                    first = False
                if sniffer is not None and sniffer.feed(chunk) is not None:
                    # Pinned before the client can see the id and name it in its next turn.
                    _pin_response(state, route.name, sniffer.found, pipeline)
                await response.write(chunk)
                if tap is not None:
                    tap.chunks.append(chunk)
        except ConnectionError:
            raise  # the client went away: nobody to tell, and not the upstream's fault
        except Exception as failure:  # a started stream ends in-band
            if isinstance(failure, ProxyError):
                e = failure
                log.warning("stream on route %s failed: %s", route.name, e.message)
                state.metrics.upstream_error(pipeline, module, e.code)
            else:
                log.exception("stream on route %s broke unexpectedly", route.name)
                e = internal_error(failure)
            if tap is not None:
                tap.status = e.status
            # Headers are gone already: tell the client in-band, in its protocol's way.
            state.metrics.translation_event(route.name, pipeline, "stream_abort")
            await response.write(dialect.stream_error(e))
        await response.write_eof()
        if tap is not None:
            tap.seconds = time.perf_counter() - tap.started
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        if reply.release is not None:
            reply.release()
    return response


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _serve(request, OPENAI_CHAT)


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await _serve(request, OPENAI_EMBEDDINGS)


async def messages(request: web.Request) -> web.StreamResponse:
    return await _serve(request, ANTHROPIC_MESSAGES)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    return await _serve(request, ANTHROPIC_COUNT_TOKENS)


async def responses(request: web.Request) -> web.StreamResponse:
    return await _serve(request, OPENAI_RESPONSES)


async def models(request: web.Request) -> web.Response:
    """Models the routes accept: exact names as model objects, patterns listed beside them."""
    runtime = request.app[STATE].reloader.current
    if runtime is None:
        return error_response(ProxyError(503, "not_ready", "No valid config loaded yet."))
    data, patterns = [], []
    seen: set[str] = set()
    created = int(runtime.loaded_at)
    for route in runtime.router.routes:
        for pattern in route.patterns:
            if pattern.kind == "exact":
                if pattern.source not in seen:
                    seen.add(pattern.source)
                    data.append({"id": pattern.source, "object": "model", "created": created,
                                 "owned_by": f"vpipe:{route.pipeline}"})
            else:
                patterns.append({"pattern": pattern.source, "route": route.name,
                                 "pipeline": route.pipeline})
    return web.json_response({"object": "list", "data": data, "patterns": patterns},
                             dumps=lambda v: orjson.dumps(v).decode())


_METHODS = {"/v1/chat/completions": "POST", "/v1/embeddings": "POST", "/v1/models": "GET",
            "/v1/messages": "POST", "/v1/responses": "POST"}


async def not_found(request: web.Request) -> web.Response:
    dialect = ANTHROPIC_MESSAGES if "/v1/messages" in request.path else OPENAI_CHAT
    for suffix, method in _METHODS.items():
        if request.path.endswith(suffix):
            return error_response(ProxyError(
                405, "method_not_allowed", f"{request.path} takes {method}, not {request.method}.",
                headers={"Allow": method}), dialect)
    return error_response(ProxyError(
        404, "unknown_endpoint",
        f"{request.method} {request.path} is not an endpoint of this proxy; it serves "
        "POST /v1/chat/completions, POST /v1/responses, POST /v1/embeddings, POST /v1/messages "
        "and GET /v1/models."),
        dialect)


def add_routes(app: web.Application) -> None:
    for prefix in ("", "/{prefix:.+?}"):
        app.router.add_post(prefix + "/v1/chat/completions", chat_completions)
        app.router.add_post(prefix + "/v1/embeddings", embeddings)
        app.router.add_post(prefix + "/v1/messages", messages)
        app.router.add_post(prefix + "/v1/messages/count_tokens", count_tokens)
        app.router.add_post(prefix + "/v1/responses", responses)
        app.router.add_get(prefix + "/v1/models", models)
    app.router.add_route("*", "/{tail:.*}", not_found)
