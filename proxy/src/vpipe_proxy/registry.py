"""Module registry: module type (and provider family) -> factory of static instances.

The registry is the one place that knows which classes implement which module types; the pool
asks it for an instance per distinct config and never imports module classes itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from vpipe_api.document import ProviderConfig
from vpipe_api.families import IN_PROCESS_FAMILIES
from vpipe_api.resolve import provider_config_problems
from vpipe_proxy.compatibility import CompatibilityModule
from vpipe_proxy.errors import ConfigLoadError
from vpipe_proxy.modules import Module
from vpipe_proxy.providers.http import HTTPProvider
from vpipe_proxy.providers.mock import MockProvider


@dataclass(frozen=True)
class BuildContext:
    """What factories may use besides the instance's own config."""

    secrets_dir: str
    environ: Mapping[str, str]
    warm_connections: int = 1
    max_upstream_body_bytes: int = 0  # 0: unbounded (settings give the real defaults)
    max_sse_event_bytes: int = 0


Factory = Callable[[str, dict[str, Any], BuildContext], Module]


def _provider(key: str, raw: dict[str, Any], context: BuildContext) -> Module:
    try:
        config = ProviderConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigLoadError(f"instance {key}: provider config is malformed: {e}") from e
    problems = provider_config_problems(config)
    if problems:
        raise ConfigLoadError(f"instance {key}: " + "; ".join(f"{field}: {problem}"
                                                              for field, problem in problems))
    if config.family in IN_PROCESS_FAMILIES:
        return MockProvider(key, config)
    if config.protocol not in HTTP_PROTOCOLS:
        raise ConfigLoadError(
            f"instance {key}: provider protocol '{config.protocol}' is not implemented by this proxy"
        )
    return HTTPProvider(key, config, secrets_dir=context.secrets_dir, environ=context.environ,
                        warm_connections=context.warm_connections,
                        max_body_bytes=context.max_upstream_body_bytes,
                        max_event_bytes=context.max_sse_event_bytes)


HTTP_PROTOCOLS = frozenset({"openai-chat", "anthropic-messages", "openai-responses"})


class Registry:
    """Maps module types to factories; extend with `register` (e.g. from entry points)."""

    def __init__(self) -> None:
        self._factories: dict[str, Factory] = {
            "provider": _provider,
            "compatibility": lambda key, config, _: CompatibilityModule(key, config),
        }

    def register(self, module_type: str, factory: Factory) -> None:
        if module_type in self._factories:
            raise ValueError(f"module type {module_type!r} is already registered")
        self._factories[module_type] = factory

    @property
    def types(self) -> list[str]:
        return sorted(self._factories)

    def create(self, key: str, module_type: str, config: dict[str, Any],
               context: BuildContext) -> Module:
        factory = self._factories.get(module_type)
        if factory is None:
            raise ConfigLoadError(
                f"instance {key}: unknown module type {module_type!r}; this proxy knows "
                + ", ".join(self.types)
            )
        return factory(key, config, context)
