"""Build a rendered config the way the proxy would, without starting anything.

`vpipe validate` runs this after the pure validation, so "passes validate" means "the proxy
builds it": every module instance is constructed by the same registry and factories (URL
parsing, pool set-up, rule compilation) and the router compiles every Route, and whatever they
raise becomes an issue naming the Pipeline module or Route. Nothing is connected, no secret is
read (those are checked when an instance starts: `vpipe serve` reports them).
"""

from __future__ import annotations

import logging

from vpipe_api.document import ConfigDocument
from vpipe_api.errors import Issue
from vpipe_proxy.registry import BuildContext, Registry
from vpipe_proxy.routing import Router

log = logging.getLogger(__name__)


def build_issues(document: ConfigDocument, registry: Registry | None = None) -> list[Issue]:
    """Every problem the proxy would hit building `document`; empty when it would load."""
    registry = registry or Registry()
    context = BuildContext(secrets_dir="", environ={}, warm_connections=0)
    issues: list[Issue] = []
    users: dict[str, tuple[str, str]] = {}
    for name, pipeline in document.pipelines.items():
        for index, module in enumerate(pipeline.modules):
            users.setdefault(module.instance, (f"Pipeline/{document.namespace}/{name}",
                                               f"spec.modules[{index}]"))
    for key, spec in sorted(document.instances.items()):
        resource, field = users.get(key, (f"instance {key}", ""))
        try:
            registry.create(key, spec.type, spec.config, context)
        except Exception as e:  # whatever the proxy would meet, reported as what it is
            log.debug("building instance %s failed", key, exc_info=e)
            issues.append(Issue(resource, field, f"the proxy cannot build this module: "
                                f"{type(e).__name__}: {e}"))
    try:
        Router(document.routes)
    except Exception as e:
        issues.append(Issue(f"Routes in namespace {document.namespace}", "spec.match.models",
                            f"the proxy cannot compile the routes: {type(e).__name__}: {e}"))
    return issues
