"""The running operator: settings + credentials -> kopf, our API client and the scheduler.

`Runtime.run()` is what `python -m vpipe_operator` (and `vpipe operator`) await, and what the
tests run in-process against kmock. kopf owns the process: signals (SIGTERM/SIGINT start a
graceful stop), peering, liveness, the watches. Our pieces start in kopf's startup handler and stop
in its cleanup handler, so in-flight reconciles finish their writes before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import kopf

from vpipe_operator import handlers
from vpipe_operator.controller import Controller
from vpipe_operator.credentials import Credentials
from vpipe_operator.kube import KubeClient
from vpipe_operator.scheduling import NamespaceScheduler
from vpipe_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: OperatorSettings, credentials: Credentials) -> None:
        self.settings = settings
        self.credentials = credentials
        self.client: KubeClient | None = None
        self.controller: Controller | None = None
        self.scheduler: NamespaceScheduler | None = None
        self.registry = handlers.build_registry(self)

    async def run(
        self, *, stop_flag: asyncio.Event | threading.Event | None = None,
        ready_flag: asyncio.Event | threading.Event | None = None,
    ) -> None:
        """Run until a signal or `stop_flag`; kopf handles peering and graceful shutdown."""
        s = self.settings
        logger.info("vpipe operator starting: %s, API %s (%s), %s",
                    "all namespaces" if s.clusterwide else f"namespaces {', '.join(s.namespaces)}",
                    self.credentials.server, self.credentials.origin,
                    f"peering {s.peering!r}" if s.peering else "standalone")
        await kopf.operator(
            registry=self.registry,
            clusterwide=s.clusterwide,
            namespaces=s.namespaces,
            standalone=None if s.peering else True,
            peering_name=s.peering or None,
            priority=s.priority,
            liveness_endpoint=s.liveness or None,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )

    async def start(self) -> None:
        """Called from kopf's startup handler, inside the operator's event loop."""
        s = self.settings
        self.client = KubeClient(self.credentials, timeout=s.request_timeout)
        self.controller = Controller(self.client, s)
        self.scheduler = NamespaceScheduler(
            self.controller.reconcile, debounce=s.debounce, max_delay=s.max_delay,
            concurrency=s.concurrency, backoff=s.backoff, backoff_max=s.backoff_max,
        )

    async def stop(self) -> None:
        """Called from kopf's cleanup handler: let in-flight reconciles finish, then close."""
        if self.scheduler is not None:
            await self.scheduler.close(self.settings.shutdown_timeout)
        if self.controller is not None:
            await self.controller.close()
        if self.client is not None:
            await self.client.close()
        logger.info("vpipe operator stopped")

    def touch(self, namespace: str | None) -> None:
        if namespace and self.scheduler is not None:
            self.scheduler.touch(namespace)
