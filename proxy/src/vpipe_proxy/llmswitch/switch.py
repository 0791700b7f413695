"""Where the llmswitch sits in a chain: a wrapper in front of a provider of another protocol.

The chain asks `switch_for(client, provider)` once at build time and keeps the wrapped callable,
so a request pays for conversion only when its protocol actually differs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import orjson

from vpipe_proxy.errors import ProxyError
from vpipe_proxy.llmswitch import anthropic_openai
from vpipe_proxy.llmswitch.anthropic_openai_stream import OpenAIToAnthropicStream
from vpipe_proxy.modules import Call, Next, Reply

Switch = Callable[[Next], Next]


def _openai_error(reply: Reply) -> ProxyError:
    """A provider's non-200 OpenAI-shaped reply, re-raised for the client's error renderer."""
    message, code = f"the provider answered {reply.status}", "upstream_error"
    try:
        error = orjson.loads(reply.body).get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            code = str(error.get("code") or error.get("type") or code)
    except (orjson.JSONDecodeError, AttributeError):
        pass
    return ProxyError(reply.status, code, message, headers=reply.headers)


async def _anthropic_stream(chunks: AsyncIterator[bytes], model: str) -> AsyncIterator[bytes]:
    converter = OpenAIToAnthropicStream(model)
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
            raise _openai_error(reply)
        if reply.chunks is not None:
            return Reply(200, chunks=_anthropic_stream(reply.chunks, call.model),
                         content_type="text/event-stream", release=reply.release)
        try:
            data = orjson.loads(reply.body)
        except orjson.JSONDecodeError as e:
            raise ProxyError(502, "upstream_protocol_error",
                             f"the provider's reply is not JSON: {e}") from e
        message = anthropic_openai.response_to_anthropic(data, call.model)
        return Reply(200, body=orjson.dumps(message), headers=reply.headers)

    return switch


_SWITCHES: dict[tuple[str, str], Switch] = {
    ("anthropic-messages", "openai-chat"): anthropic_to_openai,
}


def switch_for(client: str, provider: str) -> Switch | None:
    return _SWITCHES.get((client, provider))
