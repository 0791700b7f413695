"""Protocol names and the shapes each module accepts (the data behind protocol guards).

A *client protocol* is what an application speaks to the proxy (picked by the endpoint it calls);
a *provider protocol* is what an upstream speaks. A chain is valid for a client protocol only when
every module accepts the shape it is handed; the provider at the end is the last word.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

ClientProtocol = Literal["openai-chat", "openai-embeddings", "openai-responses", "anthropic-messages"]
ProviderProtocol = Literal["openai-chat", "openai-responses", "anthropic-messages"]

CLIENT_PROTOCOLS: Final[tuple[str, ...]] = get_args(ClientProtocol)
PROVIDER_PROTOCOLS: Final[tuple[str, ...]] = get_args(ProviderProtocol)

# Client endpoints the proxy serves today, by client protocol.
ENDPOINTS: Final[dict[str, str]] = {
    "openai-chat": "/v1/chat/completions",
    "openai-embeddings": "/v1/embeddings",
    "openai-responses": "/v1/responses",
    "anthropic-messages": "/v1/messages",
}

# Provider protocols this version can call, and the client shapes each accepts unchanged.
# An OpenAI-compatible API serves chat completions and embeddings under one base URL.
PROVIDER_ACCEPTS: Final[dict[str, frozenset[str]]] = {
    "openai-chat": frozenset({"openai-chat", "openai-embeddings"}),
    "anthropic-messages": frozenset({"anthropic-messages"}),
    "openai-responses": frozenset({"openai-responses"}),
}

# Client protocol -> provider protocols an llmswitch converts it to. The proxy inserts the
# llmswitch itself wherever a client's protocol differs from what the provider speaks.
CONVERSIONS: Final[dict[str, frozenset[str]]] = {
    "anthropic-messages": frozenset({"openai-chat", "openai-responses"}),
    "openai-chat": frozenset({"anthropic-messages", "openai-responses"}),
    # Through Chat Completions: to an openai-chat provider directly, to Anthropic in two steps.
    "openai-responses": frozenset({"openai-chat", "anthropic-messages"}),
}

# Shapes each non-provider module type handles (protocol guard for the middle of a chain).
MODULE_ACCEPTS: Final[dict[str, frozenset[str]]] = {
    "compatibility": frozenset({"openai-chat", "openai-embeddings"}),
}

# Client protocols the proxy has a front end for in this version.
SERVED_CLIENT_PROTOCOLS: Final[frozenset[str]] = frozenset(
    {"openai-chat", "openai-embeddings", "anthropic-messages", "openai-responses"}
)


def provider_accepts(protocol: str) -> frozenset[str]:
    """Client shapes a provider of `protocol` accepts; empty when the protocol is not callable yet."""
    return PROVIDER_ACCEPTS.get(protocol, frozenset())


def pipeline_accepts(provider_protocol: str) -> frozenset[str]:
    """Client protocols a chain ending in such a provider serves, natively or via llmswitch."""
    native = provider_accepts(provider_protocol)
    converted = {c for c, targets in CONVERSIONS.items() if provider_protocol in targets}
    return native | converted
