"""The admin port: health, readiness, metrics and debug views, apart from client traffic.

Nothing here can change the proxy's behaviour; /debug views show config as loaded, with any
header value that could be a credential redacted.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from vpipe_api.document import ConfigDocument
from vpipe_api.protocols import CLIENT_PROTOCOLS
from vpipe_proxy.modules import PooledModule
from vpipe_proxy.routing import Verdict
from vpipe_proxy.state import STATE

_SENSITIVE = re.compile(r"auth|key|token|secret|password|cookie", re.IGNORECASE)
REDACTED = "[redacted]"


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(value, option=orjson.OPT_INDENT_2),
                        content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return _json({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    """Ready once a config is loaded and warm; detail of the last reload and of the background
    tasks either way (a failing task shows here, and the proxy stays ready on its last good
    config: restarting it would not help)."""
    state = request.app[STATE]
    reloader = state.reloader
    runtime = reloader.current
    body = {
        "ready": runtime is not None,
        "revision": runtime.revision if runtime else None,
        "lastReload": reloader.status.as_dict(),
        "source": reloader.source.description,
        "backgroundTasks": state.supervisor.snapshot(),
    }
    return _json(body, 200 if runtime is not None else 503)


async def metrics(request: web.Request) -> web.Response:
    data = request.app[STATE].metrics.exposition()
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


def redact(value: Any, key: str = "") -> Any:
    """Copy of `value` with values under credential-like keys replaced."""
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str) and _SENSITIVE.search(key):
        return REDACTED
    return value


async def debug_config(request: web.Request) -> web.Response:
    """The config being served (credentials redacted), with the last reload's outcome and the
    background tasks' failures: a rejected newer config shows here next to the one served."""
    state = request.app[STATE]
    runtime = state.reloader.current
    if runtime is None:
        return _json({"error": "no config loaded", "lastReload": state.reloader.status.as_dict(),
                      "backgroundTasks": state.supervisor.snapshot()}, 503)
    document = runtime.document.model_dump(by_alias=True)
    for instance in document["instances"].values():
        headers = instance["config"].get("headers")
        if isinstance(headers, dict):
            instance["config"]["headers"] = {
                k: (REDACTED if _SENSITIVE.search(k) else v) for k, v in headers.items()
            }
    return _json({**document, "status": {"lastReload": state.reloader.status.as_dict(),
                                         "backgroundTasks": state.supervisor.snapshot()}})


async def debug_explain(request: web.Request) -> web.Response:
    """Which route would take ?model=&protocol=&prefix= (plus header.NAME=VALUE), and why."""
    runtime = request.app[STATE].reloader.current
    if runtime is None:
        return _json({"error": "no config loaded"}, 503)
    model = request.query.get("model")
    protocol = request.query.get("protocol", "openai-chat")
    if not model:
        return _json({"error": "pass ?model=NAME (and optionally protocol=, prefix=, "
                      "header.NAME=VALUE)"}, 400)
    if protocol not in CLIENT_PROTOCOLS:
        return _json({"error": f"unknown protocol {protocol!r}; one of "
                      + ", ".join(CLIENT_PROTOCOLS)}, 400)
    headers = {k[len("header."):].lower(): v for k, v in request.query.items()
               if k.startswith("header.")}
    prefix = request.query.get("prefix", "")
    router = runtime.router
    chosen = router.route(model, protocol, prefix, headers)
    return _json({
        "model": model, "protocol": protocol, "prefix": prefix, "headers": headers,
        "revision": runtime.revision,
        "route": chosen.name if chosen else None,
        "pipeline": chosen.pipeline if chosen else None,
        "upstreamModel": _upstream(runtime.document, chosen.pipeline, model) if chosen else None,
        "message": None if chosen else router.no_route_message(model, protocol, prefix, headers),
        "verdicts": [_verdict(v) for v in router.explain(model, protocol, prefix, headers)],
    })


def _upstream(document: ConfigDocument, pipeline: str, model: str) -> dict[str, Any]:
    provider, upstream, key = document.upstream_model(pipeline, model)
    return {"provider": provider, "model": upstream, "modelMapKey": key}


def _verdict(v: Verdict) -> dict[str, Any]:
    return {"route": v.route, "pipeline": v.pipeline, "priority": v.priority,
            "matched": v.matched, "reason": v.reason}


async def debug_instances(request: web.Request) -> web.Response:
    """Every live instance: health, and its connection pool's figures as of this request."""
    state = request.app[STATE]
    pool = state.reloader.pool
    runtime = state.reloader.current
    return _json({
        key: {"type": type(module).__name__, "inUse": bool(runtime and key in runtime.instance_keys),
              "health": redact(module.health.__dict__),
              "pool": module.pool_stats() if isinstance(module, PooledModule) else None}
        for key, module in sorted(pool.live.items())
    })


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/debug/config", debug_config)
    app.router.add_get("/debug/explain", debug_explain)
    app.router.add_get("/debug/instances", debug_instances)
