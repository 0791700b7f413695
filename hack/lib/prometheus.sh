#!/usr/bin/env bash
# A Prometheus server binary for the canary-analysis tests (tests/support/prometheus.py), found
# or fetched once:
#   1. $VPIPE_TEST_PROMETHEUS, if set;
#   2. `prometheus` on PATH;
#   3. .cache/prometheus/root/usr/bin/prometheus, unpacked before from Debian's package;
#   4. otherwise `apt-get download prometheus` (Debian's registry only; 2.42 on bookworm) and
#      `dpkg-deb -x` it there. Never installed system-wide: its maintainer scripts want a user
#      and a service the tests don't need. Package lists missing or stale: one `apt-get update`
#      (as root) and a second try. Set VPIPE_PROMETHEUS_CACHE to keep it elsewhere.
# Once there, no apt call is made. Use:
#   source hack/lib/prometheus.sh   exports VPIPE_TEST_PROMETHEUS (hack/test.sh does this)
#   bash hack/lib/prometheus.sh     prints the path
# Fails (return/exit 1) with what to install on stderr when none can be had.

_VPIPE_PROM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

_vpipe_prometheus_runs() {
  "$1" --version >/dev/null 2>&1
}

vpipe_prometheus() {
  if [ -n "${VPIPE_TEST_PROMETHEUS:-}" ]; then
    _vpipe_prometheus_runs "$VPIPE_TEST_PROMETHEUS" || {
      echo "VPIPE_TEST_PROMETHEUS=$VPIPE_TEST_PROMETHEUS does not run (\`--version\` fails)" >&2
      return 1; }
    echo "$VPIPE_TEST_PROMETHEUS"; return 0
  fi
  if command -v prometheus >/dev/null 2>&1 && _vpipe_prometheus_runs "$(command -v prometheus)"; then
    command -v prometheus; return 0
  fi
  local cache="${VPIPE_PROMETHEUS_CACHE:-$_VPIPE_PROM_ROOT/.cache/prometheus}"
  local binary="$cache/root/usr/bin/prometheus"
  if [ -x "$binary" ] && _vpipe_prometheus_runs "$binary"; then
    echo "$binary"; return 0
  fi
  local advice="install Prometheus 2.x (Debian: apt-get install prometheus) or set VPIPE_TEST_PROMETHEUS to its binary"
  if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    echo "no prometheus on PATH, and no apt-get/dpkg-deb to fetch Debian's package: $advice" >&2
    return 1
  fi
  echo "== prometheus: unpacking Debian's package into $cache (for the analysis tests)" >&2
  local tmp
  mkdir -p "$cache" && tmp="$(mktemp -d "$cache/.fetch.XXXXXX")" || return 1
  if ! (cd "$tmp" && apt-get download prometheus) >"$tmp/apt.log" 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      echo "apt-get download prometheus failed: $(tail -n 2 "$tmp/apt.log" | tr '\n' ' ')" >&2
      echo "If the package lists are missing or stale, run \`apt-get update\` as root" \
           "(as root this script does it), or $advice" >&2
      rm -rf "$tmp"; return 1
    fi
    echo "== prometheus: apt-get download failed; apt-get update, then once more" >&2
    if ! apt-get update -qq >"$tmp/apt.log" 2>&1 \
        || ! (cd "$tmp" && apt-get download prometheus) >>"$tmp/apt.log" 2>&1; then
      echo "could not download Debian's prometheus package even after apt-get update:" >&2
      tail -n 5 "$tmp/apt.log" >&2
      echo "Is a Debian mirror reachable? Otherwise $advice" >&2
      rm -rf "$tmp"; return 1
    fi
  fi
  local debs=("$tmp"/prometheus_*.deb)
  if [ ! -f "${debs[0]}" ] || ! dpkg-deb -x "${debs[0]}" "$tmp/root" \
      || ! _vpipe_prometheus_runs "$tmp/root/usr/bin/prometheus"; then
    echo "could not unpack a working usr/bin/prometheus from ${debs[0]##*/}: $advice" >&2
    rm -rf "$tmp"; return 1
  fi
  # Into place in one rename, so an interrupted run never leaves half a binary behind; a run
  # alongside may have been first, which is fine.
  [ -x "$binary" ] || rm -rf "$cache/root"
  mv -T "$tmp/root" "$cache/root" 2>/dev/null || true
  mv -f "${debs[0]}" "$cache/"
  rm -rf "$tmp"
  _vpipe_prometheus_runs "$binary" || { echo "$binary does not run: $advice" >&2; return 1; }
  echo "$binary"
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
