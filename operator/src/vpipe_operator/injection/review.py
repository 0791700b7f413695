"""One AdmissionReview in, one AdmissionReview out: the webhook's behaviour, without HTTP.

The rule this module exists to keep: **admission never fails because of us.** Every answer is
`allowed: true`. A pod that should get the sidecar but cannot (the config lookup failed or
timed out, an unexpected pod shape, a bug) is admitted unchanged with a warning, which
`kubectl` prints and which is logged here. A body that is not an AdmissionReview at all raises
`BadReview` (the server answers 400; the API server then applies failurePolicy Ignore).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any, Final, TypedDict

from vpipe_operator.errors import OperatorError
from vpipe_operator.injection import mutation
from vpipe_operator.injection.lookup import SecretSource
from vpipe_operator.injection.settings import WebhookSettings

logger = logging.getLogger("vpipe_operator.injection")

REVIEW_VERSIONS: Final = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
WARNING_PREFIX: Final = "vpipe: "


class BadReview(OperatorError, ValueError):
    """The request body is not an AdmissionReview this webhook can answer."""


class ReviewResponse(TypedDict, total=False):
    uid: str
    allowed: bool
    patchType: str
    patch: str
    warnings: list[str]


class AdmissionReview(TypedDict):
    apiVersion: str
    kind: str
    response: ReviewResponse


async def answer(review: Any, *, settings: WebhookSettings, source: SecretSource,
                 namespace_selected: bool) -> AdmissionReview:
    """The AdmissionReview answering `review` (already parsed JSON)."""
    request = review.get("request") if isinstance(review, dict) else None
    uid = request.get("uid") if isinstance(request, dict) else None
    if not isinstance(request, dict) or not isinstance(uid, str) or not uid:
        raise BadReview("expected an AdmissionReview with request.uid")
    version = review.get("apiVersion")
    api_version = version if version in REVIEW_VERSIONS else REVIEW_VERSIONS[0]
    try:
        result = await _review(request, settings, source, namespace_selected)
    except Exception as e:  # the rule above: never fail admission, whatever went wrong
        logger.exception("injection failed for %s; admitted without the sidecar", _who(request))
        result = mutation.Mutation((), (f"sidecar not injected: internal error: {e}",))
    response: ReviewResponse = {"uid": uid, "allowed": True}
    if result.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(list(result.patch)).encode()).decode()
    if result.warnings:
        response["warnings"] = [WARNING_PREFIX + w for w in result.warnings]
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}


async def _review(request: dict[str, Any], settings: WebhookSettings, source: SecretSource,
                  namespace_selected: bool) -> mutation.Mutation:
    kind = request.get("kind") or {}
    if request.get("operation") != "CREATE" or kind.get("kind") != "Pod" or kind.get("group"):
        return mutation.Mutation(())  # the chart registers pods/CREATE only; anything else passes
    pod = request.get("object")
    if not isinstance(pod, dict):
        raise BadReview("expected request.object to be the Pod")
    namespace = str(request.get("namespace") or (pod.get("metadata") or {}).get("namespace") or "")
    decision = mutation.decide(pod, namespace=namespace, namespace_selected=namespace_selected,
                               skip_namespace=settings.namespace)
    if not decision.inject:
        logger.debug("not injecting %s: %s", _who(request), decision.reason)
        return mutation.Mutation((), (decision.reason,) if decision.warn else ())
    try:
        async with asyncio.timeout(settings.lookup_timeout):
            secrets = await source.secret_names(namespace)
    except TimeoutError:
        return _not_injected(request, f"reading {namespace}/vpipe-config took longer than "
                                      f"{settings.lookup_timeout:g} s")
    except OperatorError as e:
        return _not_injected(request, str(e))
    result = mutation.mutate(pod, sidecar=settings.sidecar, secrets=secrets)
    for warning in result.warnings:
        logger.warning("%s: %s", _who(request), warning)
    if result.patch:
        logger.info("injecting %s into %s (%s), Secrets: %s", mutation.CONTAINER, _who(request),
                    decision.reason, ", ".join(secrets) or "none")
    return result


def _not_injected(request: dict[str, Any], why: str) -> mutation.Mutation:
    logger.warning("not injecting %s: %s", _who(request), why)
    return mutation.Mutation((), (f"sidecar not injected: {why}",))


def _who(request: dict[str, Any]) -> str:
    pod = request.get("object")
    meta = (pod.get("metadata") if isinstance(pod, dict) else None) or {}
    name = request.get("name") or meta.get("name") or (meta.get("generateName") or "?") + "*"
    return f"pod {request.get('namespace') or meta.get('namespace') or '?'}/{name}"
