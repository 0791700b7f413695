"""Thin appliers: read a namespace's state from the API, and carry out a `reconcile.Plan`.

No decisions here (those are in `reconcile`), only I/O in a fixed order: the ConfigMap first,
then the consumed rollout annotations, then the status patches (so Ready=True never precedes
the config it claims), then the Events. Status patches and Events run concurrently, bounded,
so 1,000 Routes do not take 1,000 round trips in a row. Events are best effort: a failed Event
is logged, the reconcile still succeeds (the conditions carry the same news, and retrying would
only post duplicates).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from vpipe_api.document import CONFIGMAP_NAME
from vpipe_operator import errors, events, kube, reconcile
from vpipe_operator.kube import KubeClient

logger = logging.getLogger(__name__)
T = TypeVar("T")


async def read_snapshot(client: KubeClient, namespace: str) -> reconcile.Snapshot:
    """Pipelines, Routes and the live ConfigMap of one namespace, read concurrently."""
    pipelines, routes, configmap = await asyncio.gather(
        client.list(kube.PIPELINES, namespace),
        client.list(kube.ROUTES, namespace),
        client.get(kube.CONFIGMAPS, namespace, CONFIGMAP_NAME),
    )
    resources = tuple(
        [reconcile.Observed.from_api("Pipeline", obj) for obj in pipelines]
        + [reconcile.Observed.from_api("Route", obj) for obj in routes]
    )
    return reconcile.Snapshot(namespace, resources, configmap)


async def read_secrets(
    client: KubeClient, namespace: str, names: Iterable[str], *, concurrency: int
) -> dict[str, frozenset[str] | None]:
    """Key names of each Secret (None when missing); values never leave `kube`."""
    ordered = sorted(set(names))
    found = await _bounded(concurrency, [functools.partial(client.secret_keys, namespace, name)
                                         for name in ordered])
    return dict(zip(ordered, found, strict=True))


async def execute(
    client: KubeClient, plan: reconcile.Plan, *, now: str, instance: str, concurrency: int
) -> None:
    """Make the cluster match `plan`; API errors propagate (the scheduler retries)."""
    namespace = plan.namespace
    action = plan.configmap
    if isinstance(action, reconcile.Create):
        await client.create(kube.CONFIGMAPS, namespace, action.manifest)
        logger.info("Namespace %s: created ConfigMap %s (revision %s)",
                    namespace, CONFIGMAP_NAME, plan.revision)
    elif isinstance(action, reconcile.Patch):
        await client.patch(kube.CONFIGMAPS, namespace, CONFIGMAP_NAME, action.patch)
        logger.info("Namespace %s: wrote ConfigMap %s (revision %s)",
                    namespace, CONFIGMAP_NAME, plan.revision)
    elif isinstance(action, reconcile.Delete):
        await client.delete(kube.CONFIGMAPS, namespace, CONFIGMAP_NAME)
        logger.info("Namespace %s: deleted ConfigMap %s (no Pipelines or Routes left)",
                    namespace, CONFIGMAP_NAME)

    # Rollout actions are consumed before their result is recorded: if the operator dies in
    # between, the action is lost (at most once; the status still shows the old step) rather
    # than applied twice (a double promote would skip a step).
    await _bounded(concurrency, [functools.partial(_patch_metadata, client, namespace, update)
                                 for update in plan.metadata])
    await _bounded(concurrency, [functools.partial(_patch_status, client, namespace, update)
                                 for update in plan.statuses])
    await _bounded(concurrency, [functools.partial(_post_event, client, namespace, spec, now=now,
                                                   instance=instance)
                                 for spec in plan.events])
    if plan.events_dropped:
        logger.warning("Namespace %s: %d more Events not posted (VPIPE_OPERATOR_MAX_EVENTS); "
                       "the resources' conditions say the same", namespace, plan.events_dropped)


async def _patch_status(client: KubeClient, namespace: str, update: reconcile.StatusUpdate) -> None:
    resource = kube.PIPELINES if update.kind == "Pipeline" else kube.ROUTES
    try:
        await client.patch(resource, namespace, update.name, {"status": update.status},
                           subresource="status")
    except errors.NotFound:
        logger.debug("%s/%s/%s: deleted before its status was written", update.kind, namespace,
                     update.name)


async def _patch_metadata(
    client: KubeClient, namespace: str, update: reconcile.MetadataPatch
) -> None:
    resource = kube.PIPELINES if update.kind == "Pipeline" else kube.ROUTES
    try:
        await client.patch(resource, namespace, update.name, update.patch)
    except errors.NotFound:
        logger.debug("%s/%s/%s: deleted before its rollout action was consumed", update.kind,
                     namespace, update.name)
    else:
        logger.info("%s/%s/%s: consumed rollout action", update.kind, namespace, update.name)


async def _post_event(
    client: KubeClient, namespace: str, spec: events.EventSpec, *, now: str, instance: str
) -> None:
    body = events.manifest(spec, namespace, now=now, suffix=uuid.uuid4().hex[:16],
                           instance=instance)
    try:
        await client.create(kube.EVENTS, namespace, body)
    except errors.ApiError as e:
        logger.warning("%s/%s/%s: could not post Event %s: %s", spec.kind, namespace, spec.name,
                       spec.reason, e)


async def _bounded(limit: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run `jobs` with at most `limit` in flight; the first failure is raised after all end."""
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    results = await asyncio.gather(*(one(job) for job in jobs), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [result for result in results if not isinstance(result, BaseException)]
