# Source me: a Prometheus server binary for the analysis tests, in VPIPE_TEST_PROMETHEUS.
# Uses `prometheus` from PATH, else Debian's package unpacked into .cache/prometheus (never
# installed system-wide: its maintainer scripts want users and services the tests don't need).
_vpipe_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
_vpipe_prom_dir="$_vpipe_root/.cache/prometheus"
_vpipe_prom_bin="$_vpipe_prom_dir/root/usr/bin/prometheus"
if command -v prometheus >/dev/null 2>&1; then
  VPIPE_TEST_PROMETHEUS="$(command -v prometheus)"
elif [ -x "$_vpipe_prom_bin" ]; then
  VPIPE_TEST_PROMETHEUS="$_vpipe_prom_bin"
else
  echo "== prometheus: unpacking Debian's package into .cache/prometheus (for analysis tests)"
  mkdir -p "$_vpipe_prom_dir/deb"
  if ! (cd "$_vpipe_prom_dir/deb" && apt-get download prometheus >/dev/null 2>&1); then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq >/dev/null && (cd "$_vpipe_prom_dir/deb" && apt-get download prometheus >/dev/null)
    else
      echo "hack/lib/prometheus.sh: cannot download Debian's prometheus package; install it (apt-get install prometheus) or run as root" >&2
      return 1 2>/dev/null || exit 1
    fi
  fi
  dpkg-deb -x "$_vpipe_prom_dir"/deb/prometheus_*.deb "$_vpipe_prom_dir/root"
  VPIPE_TEST_PROMETHEUS="$_vpipe_prom_bin"
fi
export VPIPE_TEST_PROMETHEUS
"$VPIPE_TEST_PROMETHEUS" --version 2>&1 | head -1
unset _vpipe_root _vpipe_prom_dir _vpipe_prom_bin
