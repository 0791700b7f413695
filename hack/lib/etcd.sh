#!/usr/bin/env bash
# etcd for the real-apiserver tests (tests/kapi, started by ../shared/kapi), found or fetched once
# (hack/lib/debian.sh): $VPIPE_TEST_ETCD, else `etcd` on PATH, else Debian's `etcd-server`
# package (3.4 on bookworm) unpacked into .cache/etcd (or $VPIPE_ETCD_CACHE). Use:
#   source hack/lib/etcd.sh   exports VPIPE_TEST_ETCD (hack/test.sh does this when kapi exists)
#   bash hack/lib/etcd.sh     prints the path
# Fails (return/exit 1) with what to install on stderr when none can be had.

_VPIPE_ETCD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$_VPIPE_ETCD_ROOT/hack/lib/debian.sh"

vpipe_etcd() {
  vpipe_debian_binary etcd-server etcd VPIPE_TEST_ETCD \
    "${VPIPE_ETCD_CACHE:-$_VPIPE_ETCD_ROOT/.cache/etcd}" --version
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  vpipe_etcd
else
  VPIPE_TEST_ETCD="$(vpipe_etcd)" || return 1
  export VPIPE_TEST_ETCD
  echo "== etcd: $("$VPIPE_TEST_ETCD" --version 2>&1 | sed -n 1p)" \
       "(${VPIPE_TEST_ETCD#"$_VPIPE_ETCD_ROOT"/})"
fi
