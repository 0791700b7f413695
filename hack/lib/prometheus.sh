#!/usr/bin/env bash
# A Prometheus server binary for the canary-analysis tests (tests/support/prometheus.py), found
# or fetched once (hack/lib/debian.sh): $VPIPE_TEST_PROMETHEUS, else `prometheus` on PATH, else
# Debian's `prometheus` package (2.42 on bookworm) unpacked into .cache/prometheus (or
# $VPIPE_PROMETHEUS_CACHE). Use:
#   source hack/lib/prometheus.sh   exports VPIPE_TEST_PROMETHEUS (hack/test.sh does this)
#   bash hack/lib/prometheus.sh     prints the path
# Fails (return/exit 1) with what to install on stderr when none can be had.

_VPIPE_PROM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$_VPIPE_PROM_ROOT/hack/lib/debian.sh"

vpipe_prometheus() {
  vpipe_debian_binary prometheus prometheus VPIPE_TEST_PROMETHEUS \
    "${VPIPE_PROMETHEUS_CACHE:-$_VPIPE_PROM_ROOT/.cache/prometheus}"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  vpipe_prometheus
else
  VPIPE_TEST_PROMETHEUS="$(vpipe_prometheus)" || return 1
  export VPIPE_TEST_PROMETHEUS
  echo "== prometheus: $("$VPIPE_TEST_PROMETHEUS" --version 2>&1 | sed -n 1p)" \
       "(${VPIPE_TEST_PROMETHEUS#"$_VPIPE_PROM_ROOT"/})"
fi
