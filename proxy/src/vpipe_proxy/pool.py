"""The static instance pool: one live module instance per distinct config hash.

Instances are created and warmed before the runtime that needs them is swapped in, reused
unchanged across reloads, and closed only when no runtime (current or still draining) refers
to them any more.
"""

from __future__ import annotations

import asyncio
import logging

from vpipe_api.document import ConfigDocument
from vpipe_proxy.errors import ConfigLoadError, VpipeProxyError
from vpipe_proxy.modules import Module
from vpipe_proxy.registry import BuildContext, Registry
from vpipe_proxy.runtime import Runtime

log = logging.getLogger(__name__)


class InstancePool:
    """Owns every module instance of the process."""

    def __init__(self, registry: Registry, context: BuildContext) -> None:
        self._registry = registry
        self._context = context
        self.live: dict[str, Module] = {}
        self._runtimes: set[Runtime] = set()  # current and draining runtimes

    async def build(self, document: ConfigDocument) -> Runtime:
        """A runtime for `document`, with new instances created and warmed; nothing is swapped.

        On failure every instance created here is closed again and ConfigLoadError lists all
        instances that failed.
        """
        wanted = {
            m.instance for p in document.pipelines.values() for m in p.modules
        }
        created: dict[str, Module] = {}
        errors: list[str] = []
        for key in sorted(wanted - self.live.keys()):
            spec = document.instances[key]
            try:
                created[key] = self._registry.create(key, spec.type, spec.config, self._context)
            except VpipeProxyError as e:
                errors.append(str(e))
            except Exception as e:  # a factory's ValueError is a bad config too
                log.error("instance %s could not be created", key, exc_info=e)
                errors.append(f"instance {key}: {type(e).__name__}: {e}")
        results = await asyncio.gather(*(m.start() for m in created.values()),
                                       return_exceptions=True)
        for key, result in zip(created, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, VpipeProxyError):
                    log.error("instance %s failed to start", key, exc_info=result)
                errors.append(str(result) if isinstance(result, VpipeProxyError)
                              else f"instance {key}: {type(result).__name__}: {result}")
        if errors:
            await asyncio.gather(*(m.close() for m in created.values()), return_exceptions=True)
            raise ConfigLoadError("; ".join(errors))
        instances = {key: self.live.get(key) or created[key] for key in wanted}
        try:
            runtime = Runtime(document, instances)
        except Exception as e:
            await asyncio.gather(*(m.close() for m in created.values()), return_exceptions=True)
            if isinstance(e, VpipeProxyError):
                raise
            raise ConfigLoadError(f"cannot compile routes and chains: {type(e).__name__}: {e}") from e
        self.live.update(created)
        self._runtimes.add(runtime)
        return runtime

    async def discard(self, runtime: Runtime) -> None:
        """Forget a runtime that was built but never served (e.g. shutdown raced a reload)."""
        await self.retire(runtime)

    async def retire(self, runtime: Runtime) -> None:
        """Close the instances only `runtime` used; call once it has drained."""
        self._runtimes.discard(runtime)
        still_used = set().union(*(r.instance_keys for r in self._runtimes))
        stale = [(key, self.live.pop(key)) for key in runtime.instance_keys
                 if key not in still_used and key in self.live]
        results = await asyncio.gather(*(m.close() for _, m in stale), return_exceptions=True)
        for (key, _), result in zip(stale, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("instance %s did not close cleanly: %s", key, result)

    async def close(self) -> None:
        modules = list(self.live.values())
        self.live.clear()
        self._runtimes.clear()
        await asyncio.gather(*(m.close() for m in modules), return_exceptions=True)

