#!/usr/bin/env bash
# Fail when the Helm chart is broken or stale:
#   - `helm lint --strict` (helm found or fetched by hack/lib/helm.sh);
#   - charts/vpipe/files/crds differs from the generated crds/ (fix: cp crds/*.yaml charts/vpipe/files/crds/);
#   - the values table of docs/install.md is stale (fix: python -m tests.chart.valuesdoc --write);
#   - tests/chart: every value combination renders, validates against the Kubernetes schemas,
#     and keeps its promises (RBAC, TLS, selectors, settings).
set -euo pipefail
source "$(dirname "$0")/lib/venv.sh"
helm="$(bash hack/lib/helm.sh)"
"$helm" lint --strict charts/vpipe
if ! diff -ru crds charts/vpipe/files/crds; then
  echo "charts/vpipe/files/crds is stale: cp crds/*.yaml charts/vpipe/files/crds/" >&2
  exit 1
fi
python -m pytest -q tests/chart
echo "charts/vpipe is up to date"
