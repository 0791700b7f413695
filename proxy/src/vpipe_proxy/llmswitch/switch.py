"""Where the llmswitch sits in a chain: a wrapper in front of a provider of another protocol.

The chain asks `switch_for(client, provider)` once at build time and keeps the wrapped callable,
so a request pays for conversion only when its protocol actually differs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

import orjson

from vpipe_proxy.errors import ProxyError
from vpipe_proxy.llmswitch import (
    anthropic_openai,
    openai_anthropic,
    openai_responses,
    responses_openai,
)
from vpipe_proxy.llmswitch.anthropic_openai_stream import OpenAIToAnthropicStream
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


async def _converted(chunks: AsyncIterator[bytes],
                     converter: _StreamConverter) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            out = converter.feed(chunk)
            if out:
                yield out
        tail = converter.finish()
        if tail:
            yield tail
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def anthropic_to_openai(provider: Next) -> Next:
    async def switch(call: Call) -> Reply:
        inner = Call(protocol="openai-chat", endpoint="/chat/completions",
                     body=anthropic_openai.request_to_openai(call.body), raw=b"",
                     model=call.model, stream=call.stream, headers=call.headers,
                     route=call.route, pipeline=call.pipeline)
        reply = await provider(inner)
        if reply.status != 200:
            raise _provider_error(reply)
        if reply.chunks is not None:
            return Reply(200, chunks=_converted(reply.chunks, OpenAIToAnthropicStream(call.model)),
                         content_type="text/event-stream", release=reply.release)
        try:
            data = orjson.loads(reply.body)
        except orjson.JSONDecodeError as e:
            raise ProxyError(502, "upstream_protocol_error",
                             f"the provider's reply is not JSON: {e}") from e
        message = anthropic_openai.response_to_anthropic(data, call.model)
        return Reply(200, body=orjson.dumps(message), headers=reply.headers)

    return switch


def openai_to_anthropic(provider: Next) -> Next:
    async def switch(call: Call) -> Reply:
        inner = Call(protocol="anthropic-messages", endpoint="/messages",
                     body=openai_anthropic.request_to_anthropic(call.body), raw=b"",
                     model=call.model, stream=call.stream, headers=call.headers,
                     route=call.route, pipeline=call.pipeline)
        reply = await provider(inner)
        if reply.status != 200:
            raise _provider_error(reply)
        if reply.chunks is not None:
            options = call.body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            converter = AnthropicToOpenAIStream(call.model, include_usage)
            return Reply(200, chunks=_converted(reply.chunks, converter),
                         content_type="text/event-stream", release=reply.release)
        try:
            data = orjson.loads(reply.body)
        except orjson.JSONDecodeError as e:
            raise ProxyError(502, "upstream_protocol_error",
                             f"the provider's reply is not JSON: {e}") from e
        completion = openai_anthropic.response_to_openai(data, call.model)
        return Reply(200, body=orjson.dumps(completion), headers=reply.headers)

    return switch


def responses_to_chat(provider: Next) -> Next:
    async def switch(call: Call) -> Reply:
        inner = Call(protocol="openai-chat", endpoint="/chat/completions",
                     body=responses_openai.request_to_chat(call.body), raw=b"",
                     model=call.model, stream=call.stream, headers=call.headers,
                     route=call.route, pipeline=call.pipeline)
        reply = await provider(inner)
        if reply.status != 200:
            raise _provider_error(reply)
        if reply.chunks is not None:
            return Reply(200, chunks=_converted(reply.chunks, ChatToResponsesStream(call.body)),
                         content_type="text/event-stream", release=reply.release)
        try:
            data = orjson.loads(reply.body)
        except orjson.JSONDecodeError as e:
            raise ProxyError(502, "upstream_protocol_error",
                             f"the provider's reply is not JSON: {e}") from e
        response = responses_openai.response_from_chat(data, call.body)
        return Reply(200, body=orjson.dumps(response), headers=reply.headers)

    return switch


def chat_to_responses(provider: Next) -> Next:
    async def switch(call: Call) -> Reply:
        inner = Call(protocol="openai-responses", endpoint="/responses",
                     body=openai_responses.request_to_responses(call.body), raw=b"",
                     model=call.model, stream=call.stream, headers=call.headers,
                     route=call.route, pipeline=call.pipeline)
        reply = await provider(inner)
        if reply.status != 200:
            raise _provider_error(reply)
        if reply.chunks is not None:
            options = call.body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            converter = openai_responses.ResponsesToChatStream(call.model, include_usage)
            return Reply(200, chunks=_converted(reply.chunks, converter),
                         content_type="text/event-stream", release=reply.release)
        try:
            data = orjson.loads(reply.body)
        except orjson.JSONDecodeError as e:
            raise ProxyError(502, "upstream_protocol_error",
                             f"the provider's reply is not JSON: {e}") from e
        completion = openai_responses.response_to_chat(data, call.model)
        return Reply(200, body=orjson.dumps(completion), headers=reply.headers)

    return switch


_SWITCHES: dict[tuple[str, str], Switch] = {
    ("openai-chat", "openai-responses"): chat_to_responses,
    ("anthropic-messages", "openai-responses"):
        lambda provider: anthropic_to_openai(chat_to_responses(provider)),
    ("openai-responses", "openai-chat"): responses_to_chat,
    ("openai-responses", "anthropic-messages"):
        lambda provider: responses_to_chat(openai_to_anthropic(provider)),
    ("anthropic-messages", "openai-chat"): anthropic_to_openai,
    ("openai-chat", "anthropic-messages"): openai_to_anthropic,
}


def switch_for(client: str, provider: str) -> Switch | None:
    return _SWITCHES.get((client, provider))
