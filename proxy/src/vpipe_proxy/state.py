"""Typed application state shared by the client and admin apps."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from vpipe_proxy.metrics import Metrics
from vpipe_proxy.reload import Reloader
from vpipe_proxy.settings import Settings
from vpipe_proxy.shadow import ShadowRunner
from vpipe_proxy.supervise import Supervisor
from vpipe_proxy.threads import ThreadPins


@dataclass
class ProxyState:
    settings: Settings
    reloader: Reloader
    metrics: Metrics
    shadow: ShadowRunner
    threads: ThreadPins
    supervisor: Supervisor


STATE = web.AppKey("vpipe_state", ProxyState)
