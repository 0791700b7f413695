"""Test support for the operator: a kmock API server, the operator in a thread, polling helpers.

The operator runs in its own thread and event loop (like `kopf.testing.KopfRunner`): kopf's
shutdown waits for and cancels every task its loop spawned, which must not include kmock's.
Tests change resources through kmock's HTTP API (so watch events flow) and read state straight
from kmock's in-memory objects. Every request the operator makes is kept for the RBAC audit.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import kmock
import yaml

from vpipe_api.document import CONFIGMAP_KEY, CONFIGMAP_NAME, ConfigDocument, parse_document
from vpipe_operator.credentials import Credentials
from vpipe_operator.runtime import Runtime
from vpipe_operator.settings import OperatorSettings

T = TypeVar("T")
GV = "vpipe.io/v1alpha1"
RBAC_DIR = Path(__file__).parents[2] / "operator" / "rbac"
PLURALS = {"Pipeline": "pipelines", "Route": "routes", "ConfigMap": "configmaps",
           "Secret": "secrets", "Event": "events", "Namespace": "namespaces", "Pod": "pods"}
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

FAST = OperatorSettings(
    debounce=0.05, max_delay=0.5, secret_recheck=0.2, backoff=0.05, backoff_max=1.0,
    shutdown_timeout=2.0, watch_server_timeout=60.0, watch_client_timeout=70.0,
)


def pipeline(name: str, namespace: str, *, family: str = "mock", generation: int = 1,
             **provider: Any) -> dict[str, Any]:
    return {
        "apiVersion": GV, "kind": "Pipeline",
        "metadata": {"name": name, "namespace": namespace, "generation": generation,
                     "uid": f"uid-{namespace}-{name}"},
        "spec": {"modules": [{"type": "provider", "provider": {"family": family, **provider}}]},
    }


def route(name: str, namespace: str, pipeline: str, models: list[str], *, priority: int = 0,
          generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": GV, "kind": "Route",
        "metadata": {"name": name, "namespace": namespace, "generation": generation,
                     "uid": f"uid-{namespace}-{name}"},
        "spec": {"match": {"models": models}, "priority": priority, "pipeline": pipeline},
    }


def path(kind: str, namespace: str | None, name: str | None = None) -> str:
    root = f"/apis/{GV}" if kind in ("Pipeline", "Route") else "/api/v1"
    ns = f"/namespaces/{namespace}" if namespace else ""
    return f"{root}{ns}/{PLURALS[kind]}" + (f"/{name}" if name else "")


class Cluster:
    """A kmock Kubernetes emulator with the vpipe CRDs, and shortcuts for tests.

    kmock 0.8 matches each incoming request against its whole request history (a `Filter` view
    re-filters every past request), so serving N requests costs O(N^2): 300 requests take 18 s.
    `compact()` moves the history aside every few milliseconds (it stays readable through
    `requests()`), which keeps the 1,000-Route test in seconds.
    """

    def __init__(self, emulator: kmock.KubernetesEmulator) -> None:
        self.k = emulator
        self._archive: list[kmock.Request] = []

    def compact(self) -> None:
        history: list[kmock.Request] = self.k._requests
        self._archive += history
        del history[:]

    async def compact_forever(self, interval: float = 0.01) -> None:
        while True:
            await asyncio.sleep(interval)
            self.compact()

    def requests(self) -> list[kmock.Request]:
        return self._archive + list(self.k)

    @property
    def url(self) -> str:
        return str(self.k.url).rstrip("/")

    async def create(self, obj: Mapping[str, Any]) -> None:
        meta = obj["metadata"]
        response = await self.k.post(path(obj["kind"], meta.get("namespace")), json=obj)
        assert response.status < 300, await response.text()
        response.release()

    async def create_all(self, objs: Iterable[Mapping[str, Any]]) -> None:
        await asyncio.gather(*(self.create(obj) for obj in objs))

    async def patch(self, kind: str, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        response = await self.k.patch(path(kind, namespace, name), json=patch,
                                      headers={"Content-Type": "application/merge-patch+json"})
        assert response.status < 300, await response.text()
        response.release()

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        response = await self.k.delete(path(kind, namespace, name))
        assert response.status < 300, await response.text()
        response.release()

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        group = "vpipe.io/v1alpha1" if kind in ("Pipeline", "Route") else "v1"
        return self.get_raw(f"{group}/{PLURALS[kind]}", namespace, name)

    def get_raw(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            obj = self.k.objects[resource, namespace, name]
        except KeyError:
            return None
        return None if obj.deleted else dict(obj.raw)

    def configmap(self, namespace: str) -> dict[str, Any] | None:
        return self.get("ConfigMap", namespace, CONFIGMAP_NAME)

    def document(self, namespace: str) -> ConfigDocument | None:
        cm = self.configmap(namespace)
        return None if cm is None else parse_document(cm["data"][CONFIGMAP_KEY])

    def doc(self, namespace: str) -> ConfigDocument:
        """The namespace's config document; AssertionError (`eventually`: not yet) if none."""
        document = self.document(namespace)
        assert document is not None, f"no {CONFIGMAP_NAME} in {namespace}"
        return document

    def doc_where(
        self, namespace: str, predicate: Callable[[ConfigDocument], bool]
    ) -> ConfigDocument | None:
        document = self.document(namespace)
        return document if document is not None and predicate(document) else None

    def condition(self, kind: str, namespace: str, name: str, type_: str) -> dict[str, Any]:
        obj = self.get(kind, namespace, name) or {}
        for item in (obj.get("status") or {}).get("conditions") or []:
            if item.get("type") == type_:
                return dict(item)
        return {}

    def events(self, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
        found = []
        for (resource, ns, _), obj in self.k.objects.items():
            if resource.plural == "events" and ns == namespace and not obj.deleted:
                raw = dict(obj.raw)
                if name is None or raw["involvedObject"]["name"] == name:
                    found.append(raw)
        return found

    def operator_requests(self) -> list[kmock.Request]:
        """Requests from the operator and kopf (not from the test's own client)."""
        return [r for r in self.requests()
                if not str(r.headers.get("User-Agent", "")).startswith("kmock/")]

    def operator_writes(self) -> list[str]:
        return [f"{r.method.value} {r.url.path}" for r in self.operator_requests()
                if r.method.value in WRITE_METHODS]


class OperatorThread:
    """The real operator (`Runtime.run`) in a thread with its own event loop."""

    def __init__(self, settings: OperatorSettings, credentials: Credentials) -> None:
        self.runtime = Runtime(settings, credentials)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="vpipe-operator", daemon=True)
        self.error: BaseException | None = None

    def _main(self) -> None:
        try:
            asyncio.run(self.runtime.run(stop_flag=self._stop))
        except BaseException as e:  # reported by stop()
            self.error = e

    def start(self) -> OperatorThread:
        self._thread.start()
        return self

    async def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join, timeout)
        assert not self._thread.is_alive(), "the operator did not stop"
        if self.error is not None:
            raise self.error

    @property
    def reconciles(self) -> int:
        scheduler = self.runtime.scheduler
        return 0 if scheduler is None else scheduler.stats.reconciles

    async def settle(self, cluster: Cluster, *, quiet: float = 0.3, timeout: float = 20.0) -> None:
        """Wait until the operator is settled and has written nothing for `quiet` seconds.

        Reads may go on (a missing Secret is re-checked on a timer); writes and work may not.
        """
        deadline = time.monotonic() + timeout
        seen, since = -1, time.monotonic()
        while True:
            count = len(cluster.operator_writes())
            scheduler = self.runtime.scheduler
            if count != seen or scheduler is None:
                seen, since = count, time.monotonic()
            elif time.monotonic() - since >= quiet and scheduler.settled:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the operator did not settle within {timeout}s")
            await asyncio.sleep(0.02)


async def eventually(check: Callable[[], T | None], *, what: str, timeout: float = 15.0) -> T:
    """Poll `check` until it returns something truthy (these exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        value: T | None = None
        try:
            value = check()
        except (KeyError, TypeError, AssertionError) as e:
            last = e
        else:
            last = value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(0.02)


def write_kubeconfig(directory: Path, server: str) -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": server}}],
        "users": [{"name": "kmock", "user": {"token": "test-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
    }
    target = directory / "kubeconfig"
    target.write_text(yaml.safe_dump(config))
    return target


# --- RBAC audit -------------------------------------------------------------------------------

def rbac_key(method: str, url_path: str, query: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(apiGroup, resource[/subresource], verb) of a request; None for discovery endpoints."""
    parts = [p for p in url_path.strip("/").split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    named = len(rest) > 1
    if method == "GET":
        verb = "watch" if query.get("watch") in ("true", "1") else "get" if named else "list"
    elif method == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
    return group, resource, verb


def granted(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        (group in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", []))
        and (resource in rule.get("resources", []) or "*" in rule.get("resources", []))
        and (verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
        for rule in rules
    )


def cluster_role_rules() -> list[dict[str, Any]]:
    role = yaml.safe_load((RBAC_DIR / "clusterrole.yaml").read_text())
    assert role["kind"] == "ClusterRole"
    return list(role["rules"])


def ungranted(requests: Iterable[kmock.Request]) -> set[tuple[str, str, str]]:
    rules = cluster_role_rules()
    missing = set()
    for request in requests:
        key = rbac_key(request.method.value, request.url.path, request.params)
        if key is not None and not granted(rules, *key):
            missing.add(key)
    return missing
