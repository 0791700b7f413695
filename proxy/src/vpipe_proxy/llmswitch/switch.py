"""Where the llmswitch sits in a chain: a wrapper in front of a provider of another protocol.

The chain asks `switch_for(client, provider)` once at build time and keeps the wrapped callable,
so a request pays for conversion only when its protocol actually differs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson

from vpipe_proxy.errors import ProxyError
from vpipe_proxy.llmswitch import (
    anthropic_openai,
    field_policy,
    openai_anthropic,
    openai_responses,
    responses_openai,
)
from vpipe_proxy.llmswitch.anthropic_openai_stream import OpenAIToAnthropicStream
from vpipe_proxy.llmswitch.field_policy import DROPPED_HEADER, PairPolicy, Screen
from vpipe_proxy.llmswitch.openai_anthropic_stream import AnthropicToOpenAIStream
from vpipe_proxy.llmswitch.responses_openai_stream import ChatToResponsesStream
from vpipe_proxy.modules import Call, Next, Reply

Switch = Callable[[Next], Next]


def _provider_error(reply: Reply) -> ProxyError:
    """A provider's non-200 reply (OpenAI or Anthropic shape), re-raised for the client's error
    renderer with the same status."""
    message, code = f"the provider answered {reply.status}", "upstream_error"
    try:
        error = orjson.loads(reply.body).get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            code = str(error.get("code") or error.get("type") or code)
    except (orjson.JSONDecodeError, AttributeError):
        pass
    return ProxyError(reply.status, code, message, headers=reply.headers)


class _StreamConverter(Protocol):
    def feed(self, chunk: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


# What a converter raises on a provider reply of the wrong shape (a missing key, a string where
# an object belongs, nesting too deep to serialise): the provider's fault, never a crash.
_SHAPE_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)


def _wrong_shape(call: Call, protocol: str, error: Exception) -> ProxyError:
    return ProxyError(502, "upstream_protocol_error",
                      f"pipeline '{call.pipeline}': the provider's {protocol} reply has the "
                      f"wrong shape ({type(error).__name__}: {str(error)[:200]})")


async def _converted(chunks: AsyncIterator[bytes], converter: _StreamConverter, call: Call,
                     protocol: str) -> AsyncIterator[bytes]:
    try:
        try:
            async for chunk in chunks:
                out = converter.feed(chunk)
                if out:
                    yield out
            tail = converter.finish()
        except _SHAPE_ERRORS as e:  # ProxyError is none of these
            raise _wrong_shape(call, protocol, e) from e
        if tail:
            yield tail
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


@dataclass(frozen=True)
class Conversion:
    """One client -> provider protocol step: how requests, replies and streams are converted."""

    protocol: str  # the provider side's protocol
    endpoint: str  # its API path below /v1
    policy: PairPolicy  # what happens to each request field (mapped, dropped, refused)
    request: Callable[[dict[str, Any], Screen], dict[str, Any]]
    reply: Callable[[dict[str, Any], Call], dict[str, Any]]
    stream: Callable[[Call], _StreamConverter]


def _include_usage(call: Call) -> bool:
    options = call.body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _dropped(screen: Screen, reply: Reply) -> dict[str, str] | None:
    """The reply's headers plus what this step dropped (an inner step may have named some)."""
    headers = reply.headers
    if not screen.dropped:
        return headers
    headers = dict(headers or {})
    inner = headers.get(DROPPED_HEADER)
    headers[DROPPED_HEADER] = screen.header() + (", " + inner if inner else "")
    return headers


def converting(step: Conversion, *, strict: bool = False) -> Switch:
    """A switch that converts each call with `step` before handing it to the provider side;
    `strict` (a Pipeline's `hints: refuse`) refuses what the policy would drop."""

    def wrap(provider: Next) -> Next:
        async def switch(call: Call) -> Reply:
            screen = Screen(step.policy, strict=strict, pipeline=call.pipeline)
            inner = Call(protocol=step.protocol, endpoint=step.endpoint,
                         body=step.request(call.body, screen), raw=b"", model=call.model,
                         stream=call.stream, headers=call.headers, route=call.route,
                         pipeline=call.pipeline)
            reply = await provider(inner)
            if reply.status != 200:
                raise _provider_error(reply)
            if reply.chunks is not None:
                return Reply(200, chunks=_converted(reply.chunks, step.stream(call), call,
                                                    step.protocol),
                             content_type="text/event-stream", release=reply.release,
                             headers=_dropped(screen, reply))
            try:
                data = orjson.loads(reply.body)
            except orjson.JSONDecodeError as e:
                raise ProxyError(502, "upstream_protocol_error",
                                 f"the provider's reply is not JSON: {e}") from e
            try:
                body = orjson.dumps(step.reply(data, call))
            except _SHAPE_ERRORS as e:
                raise _wrong_shape(call, step.protocol, e) from e
            return Reply(200, body=body, headers=_dropped(screen, reply))

        return switch

    return wrap


ANTHROPIC_TO_CHAT = Conversion(
    "openai-chat", "/chat/completions", field_policy.ANTHROPIC_TO_CHAT,
    anthropic_openai.request_to_openai,
    lambda data, call: anthropic_openai.response_to_anthropic(data, call.model),
    lambda call: OpenAIToAnthropicStream(call.model))
CHAT_TO_ANTHROPIC = Conversion(
    "anthropic-messages", "/messages", field_policy.CHAT_TO_ANTHROPIC,
    openai_anthropic.request_to_anthropic,
    lambda data, call: openai_anthropic.response_to_openai(data, call.model),
    lambda call: AnthropicToOpenAIStream(call.model, _include_usage(call)))
RESPONSES_TO_CHAT = Conversion(
    "openai-chat", "/chat/completions", field_policy.RESPONSES_TO_CHAT,
    responses_openai.request_to_chat,
    lambda data, call: responses_openai.response_from_chat(data, call.body),
    lambda call: ChatToResponsesStream(call.body))
CHAT_TO_RESPONSES = Conversion(
    "openai-responses", "/responses", field_policy.CHAT_TO_RESPONSES,
    openai_responses.request_to_responses,
    lambda data, call: openai_responses.response_to_chat(data, call.model),
    lambda call: openai_responses.ResponsesToChatStream(call.model, _include_usage(call)))


# Each pair in one step, or two through Chat Completions (e.g. Responses -> Chat -> Anthropic).
_STEPS: Final[dict[tuple[str, str], tuple[Conversion, ...]]] = {
    ("anthropic-messages", "openai-chat"): (ANTHROPIC_TO_CHAT,),
    ("openai-chat", "anthropic-messages"): (CHAT_TO_ANTHROPIC,),
    ("openai-responses", "openai-chat"): (RESPONSES_TO_CHAT,),
    ("openai-chat", "openai-responses"): (CHAT_TO_RESPONSES,),
    ("openai-responses", "anthropic-messages"): (RESPONSES_TO_CHAT, CHAT_TO_ANTHROPIC),
    ("anthropic-messages", "openai-responses"): (ANTHROPIC_TO_CHAT, CHAT_TO_RESPONSES),
}


def steps_for(client: str, provider: str) -> tuple[Conversion, ...]:
    """The conversion steps from `client` to `provider`; empty when none is needed or known."""
    return _STEPS.get((client, provider), ())


def switch_for(client: str, provider: str, *, strict: bool = False) -> Switch | None:
    """The switch for one pair; `strict` is the Pipeline's `hints: refuse`."""
    steps = steps_for(client, provider)
    if not steps:
        return None

    def wrap(run: Next) -> Next:
        for step in reversed(steps):
            run = converting(step, strict=strict)(run)
        return run

    return wrap
