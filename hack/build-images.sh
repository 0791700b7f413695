#!/usr/bin/env bash
# Build the vpipe-operator and vpipe-proxy images (needs a Docker engine, or DOCKER=podman).
#   bash hack/build-images.sh [TAG]          TAG defaults to the version in pyproject.toml
# Environment:
#   REGISTRY=ghcr.io/vpipe   image prefix: $REGISTRY/vpipe-operator:$TAG, $REGISTRY/vpipe-proxy:$TAG
#   PUSH=1                   push both after building
#   PYTHON_IMAGE=...         base image (pin a digest in CI: python:3.11.14-slim-bookworm@sha256:...)
# The build context is a tarball of only what the images need (pyproject.toml, README.md,
# proxy/, operator/, cli/, images/), so .venv, .cache and test data never reach the daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
docker="${DOCKER:-docker}"
registry="${REGISTRY:-ghcr.io/vpipe}"
tag="${1:-$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)}"
build_args=()
[ -n "${PYTHON_IMAGE:-}" ] && build_args+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")

command -v "$docker" >/dev/null || { echo "$docker not found: install Docker (or set DOCKER=podman)" >&2; exit 1; }
"$docker" info >/dev/null 2>&1 || { echo "$docker cannot reach its engine: is the daemon running?" >&2; exit 1; }

for image in operator proxy; do
  ref="$registry/vpipe-$image:$tag"
  echo "== building $ref"
  tar -c --exclude='__pycache__' --exclude='*.egg-info' \
      pyproject.toml README.md proxy operator cli images \
    | "$docker" build "${build_args[@]}" -f "images/Dockerfile.$image" -t "$ref" -
  if [ "${PUSH:-0}" = "1" ]; then
    "$docker" push "$ref"
  fi
done
echo "built $registry/vpipe-operator:$tag and $registry/vpipe-proxy:$tag"
echo "install with: helm install vpipe charts/vpipe -n vpipe-system --create-namespace \\"
echo "  --set image.registry=$registry --set image.tag=$tag"
