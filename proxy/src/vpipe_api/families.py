"""The provider config library: one entry per provider family with the defaults it implies.

`provider: {family: deepseek, credentials: ...}` is a complete provider because the family
supplies protocol, base URL and how the key is sent. Explicit fields in a Pipeline always win.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

AuthScheme = Literal["bearer", "api-key", "x-api-key", "none"]


@dataclass(frozen=True)
class Family:
    """Defaults for one kind of upstream."""

    name: str
    protocol: str
    base_url: str | None  # None: the user must give baseUrl (per-deployment endpoints)
    auth: AuthScheme  # how the credential travels; "none" for local servers
    credentials: Literal["required", "optional", "none"]
    headers: dict[str, str] = field(default_factory=dict)
    summary: str = ""


FAMILIES: Final[dict[str, Family]] = {
    f.name: f
    for f in (
        Family("openai", "openai-chat", "https://api.openai.com/v1", "bearer", "required",
               summary="OpenAI platform"),
        Family("azure-openai", "openai-chat", None, "api-key", "required",
               summary="Azure OpenAI; baseUrl is https://RESOURCE.openai.azure.com/openai/v1"),
        Family("anthropic", "anthropic-messages", "https://api.anthropic.com/v1", "x-api-key",
               "required", headers={"anthropic-version": "2023-06-01"},
               summary="Anthropic Messages API"),
        Family("deepseek", "openai-chat", "https://api.deepseek.com/v1", "bearer", "required",
               summary="DeepSeek (OpenAI-compatible)"),
        Family("glm", "openai-chat", "https://open.bigmodel.cn/api/paas/v4", "bearer", "required",
               summary="Zhipu GLM (OpenAI-compatible)"),
        Family("qwen", "openai-chat", "https://dashscope.aliyuncs.com/compatible-mode/v1",
               "bearer", "required", summary="Alibaba Qwen / DashScope compatible mode"),
        Family("lmstudio", "openai-chat", "http://127.0.0.1:1234/v1", "none", "none",
               summary="LM Studio local server"),
        Family("ollama", "openai-chat", "http://127.0.0.1:11434/v1", "none", "none",
               summary="Ollama's OpenAI-compatible endpoint"),
        Family("vllm", "openai-chat", None, "bearer", "optional",
               summary="vLLM OpenAI-compatible server; baseUrl required"),
        Family("openai-compatible", "openai-chat", None, "bearer", "optional",
               summary="any other OpenAI-compatible server; baseUrl required"),
        Family("mock", "openai-chat", None, "none", "none",
               summary="built-in deterministic provider answered inside the proxy; no network"),
    )
}

# Families answered inside the proxy rather than over HTTP.
IN_PROCESS_FAMILIES: Final[frozenset[str]] = frozenset({"mock"})
