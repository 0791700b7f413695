"""A runtime: one loaded config, compiled (router + chains) and bound to live instances.

The server holds one reference to the current runtime; each request reads it once and stays on
it to the end, so a reload never changes a request's path midway. A replaced runtime keeps
serving its in-flight requests until it drains.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from vpipe_api.document import ConfigDocument
from vpipe_proxy.chain import Chain
from vpipe_proxy.modules import Module
from vpipe_proxy.routing import Router


class Runtime:
    """Compiled, immutable view of one config revision plus an in-flight counter."""

    def __init__(self, document: ConfigDocument, instances: Mapping[str, Module]) -> None:
        self.document = document
        self.revision = document.revision
        self.router = Router(document.routes)
        self.instance_keys = frozenset(
            m.instance for p in document.pipelines.values() for m in p.modules
        )
        self.chains = {
            name: Chain(name, [(m.name, instances[m.instance]) for m in pipeline.modules],
                        pipeline.hints)
            for name, pipeline in document.pipelines.items()
        }
        self.loaded_at = time.time()
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def exit(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def drained(self) -> None:
        """Returns once no request is running on this runtime."""
        await self._idle.wait()
