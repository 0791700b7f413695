"""Module chain execution: a pipeline's modules composed once into one callable.

Interceptors wrap the provider in order, so running a chain costs one await per module and no
per-request allocation beyond the call itself. The protocol guard runs at each step so a payload
of the wrong shape fails fast with an error naming the module.
"""

from __future__ import annotations

from collections.abc import Sequence

from vpipe_api.protocols import CLIENT_PROTOCOLS
from vpipe_proxy.errors import ConfigLoadError, ProxyError
from vpipe_proxy.llmswitch.switch import switch_for
from vpipe_proxy.modules import Call, Interceptor, Module, Next, Provider, Reply


class Chain:
    """One pipeline's modules, ready to run."""

    def __init__(self, pipeline: str, modules: Sequence[tuple[str, Module]],
                 hints: str = "drop") -> None:
        if not modules or not isinstance(modules[-1][1], Provider):
            raise ConfigLoadError(f"pipeline {pipeline!r}: the last module must be a provider")
        self.pipeline = pipeline
        self.modules = tuple(modules)
        self.provider_name = modules[-1][0]
        self.provider: Provider = modules[-1][1]
        run: Next = _guarded(pipeline, self.provider_name, self.provider,
                             self.provider.call)
        for name, module in reversed(modules[:-1]):
            if not isinstance(module, Interceptor):
                raise ConfigLoadError(
                    f"pipeline {pipeline!r}: module {name!r} is neither an interceptor nor last"
                )
            run = _guarded(pipeline, name, module, _bind(module, run))
        self.run: Next = run
        # One entry per client protocol this chain serves: natively, or through an llmswitch
        # at the head of the chain (interceptors then see the provider's shape). `hints` is the
        # Pipeline's field policy setting: "refuse" makes the switch refuse what it would drop.
        self.runners: dict[str, Next] = {protocol: run for protocol in self.provider.accepts}
        for client in CLIENT_PROTOCOLS:
            switch = None if client in self.runners else switch_for(
                client, self.provider.protocol, strict=hints == "refuse")
            if switch is not None:
                self.runners[client] = switch(run)


def _bind(module: Interceptor, following: Next) -> Next:
    async def step(call: Call) -> Reply:
        return await module.handle(call, following)

    return step


def _guarded(pipeline: str, name: str, module: Module, step: Next) -> Next:
    accepts = module.accepts

    async def guarded(call: Call) -> Reply:
        if call.protocol not in accepts:
            raise ProxyError(
                500, "protocol_guard",
                f"pipeline '{pipeline}' module '{name}' accepts {', '.join(sorted(accepts))} "
                f"but was handed {call.protocol}; the config's protocol guards are out of date",
            )
        return await step(call)

    return guarded
