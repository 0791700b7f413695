"""The namespace reconcile, as pure decisions: resources + current state in, a `Plan` out.

`analyze` parses, validates and renders one namespace's Pipelines and Routes with the same
`vpipe_api.render` the CLI uses, attaching every `Issue` to the resource it names (issues that
name no Pipeline/Route go to all of them). `decide` adds what only the cluster knows (which
Secrets exist, the live ConfigMap, each resource's current status) and returns what to write.
No I/O and no clock here: `controller` reads, calls these, and hands the plan to `apply`.

Policies (docs/operator.md explains them to users):
- Any invalid resource holds the namespace's ConfigMap at its last good revision: the proxies keep
  serving that config anyway, so writing a partial one would silently drop routes.
- A config over the 1 MiB ConfigMap limit is never truncated: nothing is written and every
  resource gets Ready=False ConfigTooLarge.
- A missing Secret (or key) holds the config at its last good revision too: a proxy cannot load
  a config whose secret it cannot read, so writing it would only have every proxy reject it. The
  pipeline that needs it gets Ready=False SecretNotFound, its Routes PipelineNotReady.
- The ConfigMap is deleted when the namespace's last Pipeline and Route are gone.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from vpipe_api import GROUP_VERSION
from vpipe_api.document import CONFIGMAP_NAME, ConfigDocument
from vpipe_api.errors import ConfigInvalid, Issue
from vpipe_api.loading import parse_resources
from vpipe_api.render import render
from vpipe_api.resources import Pipeline, Route
from vpipe_operator import analysis as canary_analysis
from vpipe_operator import conditions, configmap, rollout
from vpipe_operator.conditions import ConditionDict
from vpipe_operator.events import EventSpec
from vpipe_operator.sidecars import Report

Kind = Literal["Pipeline", "Route"]
EVENT_REASONS = frozenset({conditions.SECRET_NOT_FOUND, conditions.CONFIG_TOO_LARGE})


@dataclasses.dataclass(frozen=True)
class Observed:
    """One Pipeline or Route as read from the API server."""

    kind: Kind
    namespace: str
    name: str
    uid: str | None
    generation: int | None
    body: Mapping[str, Any]
    status: Mapping[str, Any]

    @property
    def ref(self) -> str:
        """The same identity `vpipe_api` issues use: Kind/namespace/name."""
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def pipeline(self) -> str | None:
        """For a Route: the Pipeline it names (read raw, so it works for unparseable Routes)."""
        spec = self.body.get("spec")
        value = spec.get("pipeline") if isinstance(spec, Mapping) else None
        return value if isinstance(value, str) else None

    @classmethod
    def from_api(cls, kind: Kind, obj: Mapping[str, Any]) -> Observed:
        meta = obj.get("metadata") or {}
        generation = meta.get("generation")
        status = obj.get("status")
        return cls(
            kind=kind, namespace=str(meta.get("namespace") or ""), name=str(meta.get("name") or ""),
            uid=meta.get("uid") or None,
            generation=generation if isinstance(generation, int) else None,
            body=obj, status=status if isinstance(status, Mapping) else {},
        )


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Everything the API server told us about one namespace."""

    namespace: str
    resources: tuple[Observed, ...]
    configmap: Mapping[str, Any] | None
    sidecars: Report | None = None  # None: not asked (gate off, or no canary)
    checks: Mapping[str, rollout.CheckRun] = dataclasses.field(default_factory=dict)  # by Route

    @property
    def gate(self) -> str | None:
        """Why canary weights may not rise now (proxies lag behind the ConfigMap), or None."""
        if self.sidecars is None:
            return None
        return self.sidecars.gate(configmap.revision(self.configmap))

    @property
    def has_canaries(self) -> bool:
        """Some Route has spec.canary (read raw, before parsing)."""
        return any(obs.kind == "Route" and isinstance(obs.body.get("spec"), Mapping)
                   and obs.body["spec"].get("canary") for obs in self.resources)


@dataclasses.dataclass(frozen=True)
class SecretUse:
    secret: str
    key: str
    field: str  # e.g. spec.modules[0].provider.credentials.secretRef


@dataclasses.dataclass(frozen=True)
class Analysis:
    snapshot: Snapshot
    issues: Mapping[str, tuple[Issue, ...]]  # by Observed.ref
    invalid_pipelines: frozenset[str]
    document: ConfigDocument | None  # None: some resource is invalid
    secret_uses: Mapping[str, tuple[SecretUse, ...]]  # by pipeline name
    routes: Mapping[str, Route] = dataclasses.field(default_factory=dict)  # parsed, by name
    gates: Mapping[str, str | None] = dataclasses.field(default_factory=dict)  # by Route name

    @property
    def secret_names(self) -> frozenset[str]:
        """Secrets worth checking: only a config that will be written depends on them."""
        if self.document is None:
            return frozenset()
        return frozenset(use.secret for uses in self.secret_uses.values() for use in uses)


@dataclasses.dataclass(frozen=True)
class Keep:
    why: str


@dataclasses.dataclass(frozen=True)
class Create:
    manifest: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Patch:
    patch: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Delete:
    pass


ConfigMapAction = Keep | Create | Patch | Delete


@dataclasses.dataclass(frozen=True)
class StatusUpdate:
    kind: Kind
    name: str
    status: dict[str, Any]  # merge patch of .status


@dataclasses.dataclass(frozen=True)
class MetadataPatch:
    """A merge patch of a Route's metadata: consuming its rollout action annotation."""

    kind: Kind
    name: str
    patch: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Plan:
    namespace: str
    configmap: ConfigMapAction
    statuses: tuple[StatusUpdate, ...]
    events: tuple[EventSpec, ...]
    events_dropped: int
    revision: str | None  # the config revision the namespace serves after this plan
    recheck: bool  # a referenced Secret is missing: look again later
    summary: str
    metadata: tuple[MetadataPatch, ...] = ()  # after the ConfigMap, before the statuses
    rollouts: Mapping[str, tuple[rollout.Spec, rollout.State]] = dataclasses.field(
        default_factory=dict)  # by Route name: what each canary's rollout is now

    @property
    def writes(self) -> int:
        """API writes this plan makes (0 for a steady state)."""
        cm = 0 if isinstance(self.configmap, Keep) else 1
        return cm + len(self.metadata) + len(self.statuses) + len(self.events)


def analyze(snapshot: Snapshot) -> Analysis:
    """Parse, validate and render; every problem is attached to the resource it concerns."""
    live = [obs for obs in snapshot.resources if not _deleting(obs)]
    issues: dict[str, list[Issue]] = defaultdict(list)
    pipelines: list[Pipeline] = []
    routes: list[Route] = []
    unparsed_pipelines: set[str] = set()
    for obs in live:
        try:
            parsed = parse_resources([_manifest(obs)], origin=obs.ref)
        except ConfigInvalid as e:
            issues[obs.ref] += [Issue(obs.ref, i.field, i.message) for i in e.issues]
            if obs.kind == "Pipeline":
                unparsed_pipelines.add(obs.name)
            continue
        pipelines += parsed.pipelines
        routes += parsed.routes

    document: ConfigDocument | None = None
    shared: list[Issue] = []
    refs = {obs.ref: obs for obs in live}
    parsed_routes = {r.metadata.name: r for r in routes
                     if r.metadata.namespace == snapshot.namespace}
    canaries = {name: (refs[f"Route/{snapshot.namespace}/{name}"], route)
                for name, route in parsed_routes.items()
                if route.spec.canary is not None and f"Route/{snapshot.namespace}/{name}" in refs}
    gates: dict[str, str | None] = {}
    try:
        # First with no weight raised: the canaries' pipelines as they will be served, which
        # the gate compares with what the proxies serve. The weights the proxies should apply
        # if this config is served follow (decide() refuses the actions again, with the
        # reason, when it is not); a second render only when some weight rises.
        held = {name: _rollout(obs, route, snapshot, now="", blocked=None,
                               gate="held").active_weight
                for name, (obs, route) in canaries.items()}
        document = render(pipelines, routes, namespace=snapshot.namespace, weights=held)
        served = configmap.document(snapshot.configmap) if canaries else None
        gates = {name: _gate(snapshot, served, document, route)
                 for name, (_, route) in canaries.items()}
        weights = {name: _rollout(obs, route, snapshot, now="", blocked=None,
                                  gate=gates[name]).active_weight
                   for name, (obs, route) in canaries.items()}
        if weights != held:
            document = render(pipelines, routes, namespace=snapshot.namespace, weights=weights)
    except ConfigInvalid as e:
        own, shared = attach_issues(e.issues, refs)
        for ref, found in own.items():
            for issue in found:
                if issue.field == "spec.pipeline" and refs[ref].pipeline in unparsed_pipelines:
                    continue  # the Pipeline exists but is invalid: PipelineInvalid, not NotFound
                issues[ref].append(issue)
    if shared:
        for obs in live:
            issues[obs.ref] += shared
    if issues:
        document = None
    invalid = frozenset(obs.name for obs in live if obs.kind == "Pipeline" and issues.get(obs.ref))
    return Analysis(
        snapshot=dataclasses.replace(snapshot, resources=tuple(live)),
        issues={ref: tuple(found) for ref, found in issues.items() if found},
        invalid_pipelines=invalid | frozenset(unparsed_pipelines),
        document=document,
        secret_uses=_secret_uses(pipelines),
        routes=parsed_routes,
        gates=gates,
    )


def _gate(snapshot: Snapshot, served: ConfigDocument | None, document: ConfigDocument,
          route: Route) -> str | None:
    """Why `route`'s canary weight may not rise now, or None.

    It may once every proxy serves the ConfigMap's revision (`snapshot.gate`) and that
    revision already carries the canary as it will be served: so a canary added (or changed)
    and promoted in one go first reaches every proxy at its old weight.
    """
    if snapshot.sidecars is None:
        return None
    canary = route.spec.canary.pipeline if route.spec.canary is not None else ""
    if snapshot.sidecars.total and (served is None or served.pipelines.get(canary)
                                    != document.pipelines.get(canary)):
        return (f"the proxies serve canary Pipeline '{canary}' as it is now (the ConfigMap "
                f"gets it first, then every proxy must load it)")
    return snapshot.gate


def due_checks(analysis: Analysis, now: datetime.datetime, *, default_prometheus: str,
               namespace_label: str) -> list[canary_analysis.DueCheck]:
    """The analysis checks to run before deciding: none while the proxies lag (the gate)."""
    snapshot = analysis.snapshot
    found = []
    for obs in snapshot.resources:
        route = analysis.routes.get(obs.name) if obs.kind == "Route" else None
        if route is None or obs.ref in analysis.issues or analysis.gates.get(obs.name):
            continue
        check = canary_analysis.due(route, rollout.State.from_status(obs.status), now,
                                    default_prometheus=default_prometheus,
                                    namespace_label=namespace_label)
        if check is not None:
            found.append(check)
    return found


def attach_issues(
    issues: Sequence[Issue], refs: Collection[str]
) -> tuple[dict[str, list[Issue]], list[Issue]]:
    """Issues by the resource they name; those naming none of `refs` are shared by all."""
    own: dict[str, list[Issue]] = defaultdict(list)
    shared: list[Issue] = []
    for issue in issues:
        if issue.resource in refs:
            own[issue.resource].append(issue)
        else:
            shared.append(issue)
    return dict(own), shared


def decide(
    analysis: Analysis, secrets: Mapping[str, frozenset[str] | None], *, now: str,
    max_events: int = 50,
) -> Plan:
    """What to write: the ConfigMap action, status patches and Events, given the live state.

    `secrets` maps Secret names to their key names (None: the Secret does not exist); names not
    in it were not checked and count as present.
    """
    snap = analysis.snapshot
    existing = snap.configmap
    if not snap.resources:
        action: ConfigMapAction = Keep("no Pipelines or Routes")
        if existing is not None and configmap.is_managed(existing):
            action = Delete()
        return Plan(snap.namespace, action, (), (), 0, None, False,
                    "no Pipelines or Routes" + ("; deleting the ConfigMap"
                                               if isinstance(action, Delete) else ""))

    doc = analysis.document
    size: int | None = None
    missing = _missing_secrets(analysis, secrets) if doc is not None else {}
    if doc is None:
        action = Keep("held at the last good revision: some resources are invalid")
    elif missing:
        action = Keep("held at the last good revision: a referenced Secret or key is missing")
    else:
        want = configmap.desired(doc)
        size = configmap.data_size(want)
        if size > configmap.SIZE_LIMIT:
            action = Keep(f"config too large ({size} bytes)")
        elif existing is None:
            action = Create(want)
        elif configmap.drifted(existing, want):
            action = Patch(configmap.repair_patch(existing, want))
        else:
            action = Keep("up to date")
    served = doc is not None and not missing and not (
        size is not None and size > configmap.SIZE_LIMIT)
    revision = doc.revision if served and doc is not None else configmap.revision(existing)
    context = _Context(analysis, served, revision, size, missing, now)

    statuses: list[StatusUpdate] = []
    events: list[EventSpec] = []
    metadata: list[MetadataPatch] = []
    rollouts: dict[str, tuple[rollout.Spec, rollout.State]] = {}
    for obs in snap.resources:
        validated, ready, config_revision = context.conditions_for(obs)
        if validated["status"] == "False" and conditions.changed(
                validated, conditions.find(obs.status, "Validated")):
            for issue in analysis.issues.get(obs.ref, ()):
                events.append(EventSpec(obs.kind, obs.name, obs.uid,
                                        conditions.reason_for([issue]), conditions.issue_text(issue)))
        if ready["reason"] in EVENT_REASONS and conditions.changed(
                ready, conditions.find(obs.status, "Ready")):
            events.append(EventSpec(obs.kind, obs.name, obs.uid, ready["reason"], ready["message"]))
        extra: dict[str, Any] | None = None
        route = analysis.routes.get(obs.name) if obs.kind == "Route" else None
        if route is not None and route.spec.canary is None:
            extra = {"activeWeight": None, "rollout": None, "sidecars": None}
        elif route is not None and route.spec.canary is not None:
            requested = rollout_action(obs)[0]
            state = context.rollout_state(obs, route)
            rollouts[obs.name] = (rollout.Spec.of(route.spec.canary), state)
            extra = {**state.to_status(), "sidecars": (
                snap.sidecars.status(revision) if snap.sidecars is not None else None)}
            if requested is not None and state.pending is None:
                metadata.append(MetadataPatch(obs.kind, obs.name, consume_patch(obs)))
            news = rollout.transition_event(rollout.State.from_status(obs.status), state,
                                            requested)
            if news is not None:
                kind, reason, message = news
                events.append(EventSpec(obs.kind, obs.name, obs.uid, reason, message, kind))
        patch = conditions.status_patch(obs.status, (validated, ready), obs.generation,
                                        config_revision, extra=extra)
        if patch is not None:
            statuses.append(StatusUpdate(obs.kind, obs.name, patch))

    kept = events[:max_events]
    pipelines = sum(1 for obs in snap.resources if obs.kind == "Pipeline")
    summary = (f"{pipelines} Pipelines, {len(snap.resources) - pipelines} Routes, "
               f"{len(analysis.issues)} invalid; ConfigMap: {_describe(action)}; "
               f"revision {revision or '-'}")
    return Plan(snap.namespace, action, tuple(statuses), tuple(kept), len(events) - len(kept),
                revision, bool(missing), summary, tuple(metadata), rollouts)


def rollout_action(obs: Observed) -> tuple[str | None, str | None]:
    """The rollout action annotation on a Route (and the abort reason), if any."""
    annotations = (obs.body.get("metadata") or {}).get("annotations") or {}
    if not isinstance(annotations, Mapping):
        return None, None
    value, reason = annotations.get(rollout.ANNOTATION), annotations.get(rollout.REASON_ANNOTATION)
    return (rollout.parse_action(value) if isinstance(value, str) else None,
            reason if isinstance(reason, str) else None)


def consume_patch(obs: Observed) -> dict[str, Any]:
    """Remove the action (and reason) annotations. With the resourceVersion they were read at,
    a concurrent new action makes the patch fail with 409 and the reconcile retry, rather than
    being dropped unseen."""
    meta: dict[str, Any] = {"annotations": {rollout.ANNOTATION: None,
                                            rollout.REASON_ANNOTATION: None}}
    version = (obs.body.get("metadata") or {}).get("resourceVersion")
    if isinstance(version, str) and version:
        meta["resourceVersion"] = version
    return {"metadata": meta}


def _rollout(obs: Observed, route: Route, snapshot: Snapshot, *, now: str,
             blocked: str | None, gate: str | None) -> rollout.State:
    assert route.spec.canary is not None
    action, reason = rollout_action(obs)
    return rollout.advance(rollout.Spec.of(route.spec.canary),
                           rollout.State.from_status(obs.status), action, now=now,
                           blocked=blocked, reason=reason, gate=gate,
                           check=snapshot.checks.get(obs.name))


@dataclasses.dataclass(frozen=True)
class _Context:
    analysis: Analysis
    served: bool  # the rendered config is (or will be) in the ConfigMap
    revision: str | None  # what the ConfigMap serves after this reconcile
    size: int | None
    missing: Mapping[str, tuple[str, ...]]  # pipeline name -> what is missing
    now: str

    def conditions_for(self, obs: Observed) -> tuple[ConditionDict, ConditionDict, str | None]:
        """Validated, Ready and configRevision of one resource."""
        own = self.analysis.issues.get(obs.ref, ())
        if own:
            reason, message = conditions.reason_for(own), conditions.describe(own)
            return (self._make(obs, "Validated", False, reason, message),
                    self._make(obs, "Ready", False, reason, message), None)
        validated = self._make(obs, "Validated", True, conditions.VALID,
                               "the spec passed prerun validation")
        pipeline = obs.pipeline if obs.kind == "Route" else None
        if pipeline is not None and pipeline in self.analysis.invalid_pipelines:
            return validated, self._make(
                obs, "Ready", False, conditions.PIPELINE_INVALID,
                f"Pipeline '{pipeline}' is invalid (see its Validated condition); this Route is "
                "served once the Pipeline is fixed",
            ), self._kept_revision(obs)
        if self.served:
            return validated, self._make(
                obs, "Ready", True, conditions.SERVED,
                f"served: part of the config in ConfigMap {CONFIGMAP_NAME}"), self.revision
        if self.missing:
            return self._held_for_secrets(obs, validated, pipeline)
        if self.size is not None:
            return validated, self._make(
                obs, "Ready", False, conditions.CONFIG_TOO_LARGE,
                f"the namespace's rendered config is {self.size} bytes, over the "
                f"{configmap.SIZE_LIMIT}-byte ConfigMap limit; nothing was written (never "
                f"truncated) and the last good config (revision {self.revision or 'none'}) keeps "
                "serving: split these Routes and Pipelines across namespaces or shorten the "
                "model lists",
            ), self._kept_revision(obs)
        previous = conditions.find(obs.status, "Ready")
        if self._still_served(obs) and previous is not None:
            return validated, self._make(obs, "Ready", True, str(previous.get("reason")),
                                         str(previous.get("message"))), self.revision
        invalid = sorted(self.analysis.issues)
        listed = ", ".join(invalid[:5]) + (f" and {len(invalid) - 5} more" if len(invalid) > 5
                                            else "")
        return validated, self._make(
            obs, "Ready", False, conditions.CONFIG_HELD,
            f"this spec is valid but not served yet: the namespace's ConfigMap {CONFIGMAP_NAME} "
            f"stays at its last good revision ({self.revision or 'none written'}) until every "
            f"resource is valid; fix {listed}",
        ), None

    def rollout_state(self, obs: Observed, route: Route) -> rollout.State:
        """The rollout of a parsed Route with a canary after this reconcile."""
        return _rollout(obs, route, self.analysis.snapshot, now=self.now,
                        blocked=self._rollout_blocked(obs, route),
                        gate=self.analysis.gates.get(obs.name))

    def _rollout_blocked(self, obs: Observed, route: Route) -> str | None:
        """Why the rollout cannot move now (the config it needs is not served), or None."""
        if self.served:
            return None
        canary = route.spec.canary.pipeline if route.spec.canary else ""
        invalid = self.analysis.invalid_pipelines
        if self.analysis.issues.get(obs.ref):
            return "the Route is invalid (see its Validated condition)"
        if canary in invalid:
            return (f"canary Pipeline '{canary}' is not Validated (see its Validated "
                    "condition); fix it first")
        if route.spec.pipeline in invalid:
            return f"Pipeline '{route.spec.pipeline}' is not Validated; fix it first"
        if self.size is not None:
            return "the namespace's config is too large to serve (see the Ready condition)"
        if self.missing:
            return ("the namespace's config is held at its last good revision until the Secrets "
                    "its Pipelines reference exist (see the Ready condition)")
        return ("the namespace's config is held at its last good revision until every resource "
                "is valid (see the Ready condition)")

    def _held_for_secrets(self, obs: Observed, validated: ConditionDict,
                          pipeline: str | None) -> tuple[ConditionDict, ConditionDict, str | None]:
        """Conditions while the config waits for a Secret: the Pipeline that needs it and its
        Routes say so; what the held revision still serves stays Ready."""
        held = (f"the namespace's ConfigMap {CONFIGMAP_NAME} stays at its last good revision "
                f"({self.revision or 'none written'}) until it exists: a proxy cannot load a "
                "config whose secret it cannot read")
        if obs.kind == "Pipeline" and obs.name in self.missing:
            return validated, self._make(obs, "Ready", False, conditions.SECRET_NOT_FOUND,
                                         "; ".join(self.missing[obs.name]) + f"; {held}"), None
        if pipeline is not None and pipeline in self.missing:
            return validated, self._make(
                obs, "Ready", False, conditions.PIPELINE_NOT_READY,
                f"Pipeline '{pipeline}' is not ready (SecretNotFound): "
                + "; ".join(self.missing[pipeline])), None
        previous = conditions.find(obs.status, "Ready")
        if self._still_served(obs) and previous is not None:
            return validated, self._make(obs, "Ready", True, str(previous.get("reason")),
                                         str(previous.get("message"))), self.revision
        waiting = ", ".join(f"Pipeline '{name}'" for name in sorted(self.missing))
        return validated, self._make(
            obs, "Ready", False, conditions.CONFIG_HELD,
            f"this spec is valid but not served yet: {waiting} references a Secret that does "
            f"not exist (see its Ready condition); {held}"), None

    def _still_served(self, obs: Observed) -> bool:
        """Unchanged since it was last served by the revision the ConfigMap still holds."""
        previous = conditions.find(obs.status, "Ready")
        return bool(
            previous is not None and previous.get("status") == "True"
            and self.revision is not None and obs.status.get("configRevision") == self.revision
            and previous.get("observedGeneration") == obs.generation
        )

    def _kept_revision(self, obs: Observed) -> str | None:
        """Keep configRevision while the ConfigMap still holds that revision (stable across
        reconciles, so a held namespace writes nothing twice)."""
        current = obs.status.get("configRevision")
        return self.revision if self.revision is not None and current == self.revision else None

    def _make(self, obs: Observed, type_: str, ok: bool, reason: str,
              message: str) -> ConditionDict:
        return conditions.condition(type_, ok, reason, message, generation=obs.generation,
                                    previous=conditions.find(obs.status, type_), now=self.now)


def _manifest(obs: Observed) -> dict[str, Any]:
    """What `vpipe_api` parses: list items may lack apiVersion/kind; status is not its business."""
    return {"apiVersion": GROUP_VERSION, "kind": obs.kind,
            "metadata": obs.body.get("metadata") or {}, "spec": obs.body.get("spec")}


def _deleting(obs: Observed) -> bool:
    return bool((obs.body.get("metadata") or {}).get("deletionTimestamp"))


def _secret_uses(pipelines: Sequence[Pipeline]) -> dict[str, tuple[SecretUse, ...]]:
    uses: dict[str, tuple[SecretUse, ...]] = {}
    for pipeline in pipelines:
        found = []
        for index, module in enumerate(pipeline.spec.modules):
            credentials = module.provider.credentials if module.provider else None
            if credentials is not None:
                ref = credentials.secret_ref
                found.append(SecretUse(ref.name, ref.key,
                                       f"spec.modules[{index}].provider.credentials.secretRef"))
        if found:
            uses[pipeline.metadata.name] = tuple(found)
    return uses


def _missing_secrets(
    analysis: Analysis, secrets: Mapping[str, frozenset[str] | None]
) -> dict[str, tuple[str, ...]]:
    namespace = analysis.snapshot.namespace
    missing: dict[str, tuple[str, ...]] = {}
    for pipeline, uses in analysis.secret_uses.items():
        problems = []
        for use in uses:
            if use.secret not in secrets:
                continue
            keys = secrets[use.secret]
            if keys is None:
                problems.append(
                    f"Secret '{use.secret}' (key '{use.key}', referenced by {use.field}) does not "
                    f"exist in namespace '{namespace}'; create it: kubectl create secret generic "
                    f"{use.secret} -n {namespace} --from-literal={use.key}=..."
                )
            elif use.key not in keys:
                have = ", ".join(sorted(keys)) or "no keys"
                problems.append(
                    f"Secret '{use.secret}' has no key '{use.key}' (referenced by {use.field}; it "
                    f"has {have}); add the key or fix secretRef.key"
                )
        if problems:
            missing[pipeline] = tuple(problems)
    return missing


def _describe(action: ConfigMapAction) -> str:
    if isinstance(action, Keep):
        return f"kept ({action.why})"
    if isinstance(action, Create):
        return "create"
    if isinstance(action, Patch):
        return "repair/update"
    return "delete"
