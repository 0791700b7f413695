"""Sidecar injection: a mutating admission webhook that adds the vpipe proxy to app pods.

Layers, each importable on its own:
- `settings`: `WebhookSettings` / `SidecarSettings` from `VPIPE_WEBHOOK_*` variables;
- `mutation`: pure `decide()` and `mutate()` (Pod -> JSONPatch), no I/O;
- `lookup`: which Secrets a namespace's proxies need (its vpipe-config ConfigMap);
- `review`: one AdmissionReview in, one out; admission is never failed;
- `server`: the aiohttp HTTPS endpoint and `run_webhook(settings, credentials)`.

Run it with `python -m vpipe_operator.injection` (the chart does, as a second container of the
operator pod). It must not import kopf: the webhook serves on every replica, active or not.
"""
