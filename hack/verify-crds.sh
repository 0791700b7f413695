#!/usr/bin/env bash
# Fail, with a diff, when crds/ is not what hack/update-crds.sh would write from the models.
set -euo pipefail
source "$(dirname "$0")/lib/venv.sh"
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
bash hack/update-crds.sh "$fresh" >/dev/null
if ! diff -ru crds "$fresh"; then
  echo "crds/ is stale: run hack/update-crds.sh and commit the result" >&2
  exit 1
fi
echo "crds/ is up to date"
