#!/usr/bin/env bash
# Run the vpipe operator on this machine against the cluster KUBECONFIG points to (kind, minikube,
# a dev cluster): apply the CRDs from crds/ first, then run in the foreground until Ctrl-C.
# Extra arguments go to the operator (e.g. -n team-a,team-b, --peering vpipe, -v).
# Settings: VPIPE_OPERATOR_* env vars (docs/operator.md). It runs as *your* kubeconfig identity,
# not the operator's ServiceAccount; apply operator/rbac/ for in-cluster deployments.
source "$(dirname "$0")/lib/venv.sh"
if ! command -v kubectl >/dev/null 2>&1; then
  echo "run-operator.sh: kubectl is needed to apply the CRDs (crds/*.yaml)" >&2
  exit 1
fi
context="$(kubectl config current-context)"
echo "== applying CRDs from crds/ to context ${context}"
kubectl apply -f crds/
echo "== running the vpipe operator (Ctrl-C stops it gracefully)"
exec python -m vpipe_operator "$@"
