"""Status of Pipeline and Route resources as the operator writes it (and the CRDs describe it).

Conditions follow the Kubernetes convention (type, status, reason, message, observedGeneration,
lastTransitionTime) so `kubectl wait --for=condition=Ready` and Argo CD health checks work.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

ConditionType = Literal["Validated", "Ready"]


class _Status(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


class Condition(_Status):
    """One aspect of a resource's state."""

    type: ConditionType = Field(description="Validated: the spec passed prerun validation. "
                                "Ready: it is part of the config the namespace's proxies load.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason, e.g. PipelineNotFound, ConfigTooLarge.")
    message: str = Field(description="What is wrong and how to fix it, or what is fine.")
    observed_generation: int | None = Field(
        default=None, description="metadata.generation this condition was computed from.")
    last_transition_time: str | None = Field(
        default=None, description="RFC 3339 time the status last changed.")


class ResourceStatus(_Status):
    """Status shared by Pipelines and Routes."""

    conditions: list[Condition] = Field(default_factory=list,
                                        description="Validated and Ready conditions.")
    observed_generation: int | None = Field(
        default=None, description="metadata.generation the operator last processed.")
    config_revision: str | None = Field(
        default=None, description="Revision of the rendered config that includes this resource.")


RolloutPhase = Literal["Idle", "Progressing", "Paused", "Promoted", "Aborted"]


class CheckResult(_Status):
    """One metric of the last analysis check."""

    name: str = Field(description="The metric's name (spec.canary.analysis.metrics[].name).")
    value: str = Field(description="What Prometheus returned, or 'no data' / the query error.")
    verdict: Literal["Passed", "Failed", "Inconclusive"] = Field(
        description="Passed: within [min, max]. Failed: outside, or the query failed. "
        "Inconclusive: no data (e.g. no canary traffic yet).")


class AnalysisStatus(_Status):
    """The analysis at the step in force: counts of consecutive verdicts and the last check."""

    step: int = Field(description="The step these checks belong to; a new step starts over.")
    passes: int = Field(default=0, description="Passing checks in a row at this step.")
    failures: int = Field(default=0, description="Failed checks in a row at this step.")
    last_check_time: str | None = Field(default=None,
                                        description="RFC 3339 time of the last check.")
    results: list[CheckResult] = Field(default_factory=list,
                                       description="Each metric of the last check.")


class SidecarsStatus(_Status):
    """Which of the namespace's proxies run the config revision in the ConfigMap."""

    revision: str | None = Field(default=None,
                                 description="The revision in the ConfigMap the count is about.")
    loaded: int = Field(description="Proxies that report they serve that revision.")
    total: int = Field(description="Running proxies found (pods labelled vpipe.io/proxy).")
    summary: str = Field(description="loaded/total, e.g. 2/3 (the Sidecars column).")
    message: str = Field(default="", description="'loaded by N of M sidecars', and which ones "
                         "lag and why (at most a few are named).")


class RolloutStatus(_Status):
    """Where a Route's canary rollout stands; written by the operator (see docs/rollout.md)."""

    phase: RolloutPhase = Field(description="Idle: no step taken yet, or a weight-only canary "
                                "(the weight comes from spec.canary.weight). Progressing: at "
                                "a step. Paused: held at a step (pause action, or the steps "
                                "changed). Promoted: every request goes to the canary; make it "
                                "spec.pipeline in Git. Aborted: weight 0 until resumed.")
    canary: str = Field(description="The canary Pipeline this rollout is about; a different "
                        "spec.canary.pipeline starts a new rollout.")
    steps: list[int] = Field(default_factory=list,
                             description="The steps plan this state was computed against.")
    current_step: int | None = Field(
        default=None, description="Index into steps of the step in force; unset before the "
        "first promote and for weight-only canaries.")
    last_transition_time: str | None = Field(
        default=None, description="RFC 3339 time the phase, step or weight last changed.")
    message: str = Field(default="", description="What happened last and why, and what to do "
                         "next (e.g. a refused action and the reason).")
    analysis: AnalysisStatus | None = Field(
        default=None, description="Checks at the step in force; unset without "
        "spec.canary.analysis.")


class RouteStatus(ResourceStatus):
    """Status of a Route: the shared conditions plus the canary's rollout state."""

    active_weight: int | None = Field(
        default=None, description="Percent of traffic the proxies send (or mirror) to the "
        "canary now: the rollout's step, not necessarily spec.canary.weight.")
    rollout: RolloutStatus | None = Field(
        default=None, description="The canary rollout state; unset without spec.canary.")
    sidecars: SidecarsStatus | None = Field(
        default=None, description="How many of the namespace's proxies loaded the current "
        "config; the canary's weight rises only once all have (unset without spec.canary, or "
        "when the operator's sidecar gate is off).")
