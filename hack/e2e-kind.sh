#!/usr/bin/env bash
# End-to-end on a throwaway kind cluster. Needs docker, kind and kubectl; helm is found or
# fetched by hack/lib/helm.sh. The app pod pip-installs the openai SDK, so the cluster needs
# to reach PyPI. Steps:
#   1. create the kind cluster "$CLUSTER" (default vpipe-e2e)
#   2. build the images and load them into the cluster
#   3. helm install the chart
#   4. apply two mock Pipelines (v1, v2) and a Route with a canary at weight 0
#   5. run an app pod (python + the openai SDK) that gets the sidecar injected
#   6. shift the canary weight 0 -> 50 -> 100 and watch x-vpipe-version follow (each raise
#      waits for the sidecar gate: the app's proxy must serve the config first)
#   6b. the Route's status.sidecars says the app's proxy serves the current config (1/1)
#   7. check the sidecar's metrics count both versions
#   8. delete the cluster (KEEP=1 keeps it for a look around)
# Every kubectl and helm call names the kind context explicitly: this script never touches
# another cluster, and refuses to run if that context is not a kind one.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${CLUSTER:-vpipe-e2e}"
CONTEXT="kind-$CLUSTER"
NS_SYSTEM=vpipe-system
NS_APP=team-a
TAG=e2e
REGISTRY=vpipe.local

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "e2e needs $tool on PATH" >&2; exit 1; }
done
HELM="$(bash hack/lib/helm.sh)"
k() { kubectl --context "$CONTEXT" "$@"; }
step() { printf '\n== %s\n' "$*"; }

step "1. kind cluster $CLUSTER"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 120s
fi
case "$(kubectl config view -o jsonpath="{.contexts[?(@.name==\"$CONTEXT\")].context.cluster}")" in
  kind-*) ;;
  *) echo "refusing: context $CONTEXT does not point at a kind cluster" >&2; exit 1 ;;
esac
if [ "${KEEP:-0}" != "1" ]; then
  trap 'step "8. tear down"; kind delete cluster --name "$CLUSTER"' EXIT
fi

step "2. images"
REGISTRY="$REGISTRY" bash hack/build-images.sh "$TAG"
for image in operator proxy; do
  kind load docker-image --name "$CLUSTER" "$REGISTRY/vpipe-$image:$TAG"
done

step "3. helm install"
"$HELM" --kube-context "$CONTEXT" upgrade --install vpipe charts/vpipe \
  --namespace "$NS_SYSTEM" --create-namespace --wait --timeout 180s \
  --set image.registry="$REGISTRY" --set image.tag="$TAG" --set image.pullPolicy=Never \
  --set proxy.nativeSidecar=true
k -n "$NS_SYSTEM" rollout status deployment/vpipe-operator --timeout 120s

step "4. mock pipelines v1 and v2, a Route with a canary at weight 0"
k create namespace "$NS_APP" --dry-run=client -o yaml | k apply -f -
k label namespace "$NS_APP" vpipe.io/inject=enabled --overwrite
k -n "$NS_APP" apply -f - <<'YAML'
apiVersion: vpipe.io/v1alpha1
kind: Pipeline
metadata: {name: mock-v1}
spec:
  modules: [{type: provider, name: mock, provider: {family: mock}}]
---
apiVersion: vpipe.io/v1alpha1
kind: Pipeline
metadata: {name: mock-v2}
spec:
  modules: [{type: provider, name: mock, provider: {family: mock, modelMap: {gpt-4o-mini: mock-v2}}}]
---
apiVersion: vpipe.io/v1alpha1
kind: Route
metadata: {name: chat}
spec:
  match: {models: ["gpt-*"]}
  pipeline: mock-v1
  canary: {pipeline: mock-v2, weight: 0, mode: split}
YAML
k -n "$NS_APP" wait --for=condition=Ready route/chat --timeout 60s
k -n "$NS_APP" get configmap vpipe-config >/dev/null

step "5. an app pod with the sidecar"
k -n "$NS_APP" delete pod app --ignore-not-found --wait
k -n "$NS_APP" apply -f - <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  containers:
    - name: app
      image: python:3.11-slim
      command: ["sh", "-c", "pip install --quiet openai && touch /tmp/ready && sleep infinity"]
      readinessProbe: {exec: {command: ["test", "-f", "/tmp/ready"]}, periodSeconds: 2}
YAML
k -n "$NS_APP" wait --for=condition=Ready pod/app --timeout 300s
k -n "$NS_APP" get pod app -o jsonpath='{.metadata.annotations.vpipe\.io/sidecar-status}'; echo

# 40 requests from distinct users; prints how many each version answered, e.g. "v1=21 v2=19".
versions() {
  k -n "$NS_APP" exec -i app -c app -- python - <<'PY'
import collections
from openai import OpenAI  # base URL from OPENAI_BASE_URL, set by the injection

client = OpenAI(api_key="unused")
seen = collections.Counter()
for i in range(40):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", user=f"user-{i}", messages=[{"role": "user", "content": "hi"}])
    seen[raw.headers.get("x-vpipe-version", "?")] += 1
print(" ".join(f"{v}={n}" for v, n in sorted(seen.items())))
PY
}

# Set the canary weight, then wait until the sidecar's answers show it (the mounted ConfigMap
# reaches the pod within the kubelet sync period, about a minute).
shift_to() {
  local weight="$1" want="$2" got=""
  k -n "$NS_APP" patch route chat --type merge -p "{\"spec\":{\"canary\":{\"weight\":$weight}}}"
  for _ in $(seq 1 60); do
    got="$(versions)"
    if [[ "$got" =~ $want ]]; then
      echo "weight $weight: $got"; return 0
    fi
    sleep 5
  done
  echo "weight $weight: expected /$want/, still $got" >&2; return 1
}

step "6. canary weight 0 -> 50 -> 100"
got="$(versions)"; echo "weight 0: $got"
[ "$got" = "v1=40" ] || { echo "expected every answer from v1" >&2; exit 1; }
shift_to 50 '^v1=[0-9]+ v2=[0-9]+$'
shift_to 100 '^v2=40$'

step "6b. the sidecar gate: the operator counts the app's proxy as serving the config"
summary=""
for _ in $(seq 1 60); do
  summary="$(k -n "$NS_APP" get route chat -o jsonpath='{.status.sidecars.summary}')"
  [ "$summary" = "1/1" ] && break
  sleep 2
done
[ "$summary" = "1/1" ] || { echo "expected status.sidecars.summary 1/1, got '$summary'" >&2
  k -n "$NS_APP" get route chat -o jsonpath='{.status.sidecars.message}' >&2; exit 1; }

step "7. metrics"
metrics="$(k -n "$NS_APP" exec app -c vpipe-proxy -- python3 -c \
  "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9090/metrics').read().decode())")"
for version in v1 v2; do
  grep -E "^vpipe_requests_total\{.*version=\"$version\"" <<<"$metrics" | head -n 1 \
    || { echo "no vpipe_requests_total for $version" >&2; exit 1; }
done

step "e2e passed"
