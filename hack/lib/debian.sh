#!/usr/bin/env bash
# Sourced by hack/lib/prometheus.sh and hack/lib/etcd.sh: a binary from a Debian package, found or
# unpacked once into .cache/, never installed system-wide (maintainer scripts want users and
# services the tests don't need, and a non-root developer can't run them).
#
#   vpipe_debian_binary PACKAGE BINARY ENVVAR CACHE [VERSION-ARGS]
#     1. $ENVVAR, if set (it must run);
#     2. BINARY on PATH;
#     3. CACHE/root/usr/bin/BINARY, unpacked before;
#     4. otherwise `apt-get download PACKAGE` and `dpkg-deb -x` it into CACHE/root. Package lists
#        missing or stale: one `apt-get update` (as root) and a second try.
#   It prints the path; returns 1 with what to install on stderr when none can be had.
# "Runs" means `BINARY VERSION-ARGS` exits 0 (default: --version).

_vpipe_debian_runs() {
  local binary="$1"; shift
  "$binary" "$@" >/dev/null 2>&1
}

vpipe_debian_binary() {
  local package="$1" name="$2" envvar="$3" cache="$4"; shift 4
  local version_args=("$@"); [ ${#version_args[@]} -gt 0 ] || version_args=(--version)
  local advice="install $name (Debian: apt-get install $package) or set $envvar to its binary"
  local from_env="${!envvar:-}"
  if [ -n "$from_env" ]; then
    _vpipe_debian_runs "$from_env" "${version_args[@]}" || {
      echo "$envvar=$from_env does not run (\`${version_args[*]}\` fails)" >&2; return 1; }
    echo "$from_env"; return 0
  fi
  if command -v "$name" >/dev/null 2>&1 \
      && _vpipe_debian_runs "$(command -v "$name")" "${version_args[@]}"; then
    command -v "$name"; return 0
  fi
  local binary="$cache/root/usr/bin/$name"
  if [ -x "$binary" ] && _vpipe_debian_runs "$binary" "${version_args[@]}"; then
    echo "$binary"; return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    echo "no $name on PATH, and no apt-get/dpkg-deb to fetch Debian's package: $advice" >&2
    return 1
  fi
  echo "== $name: unpacking Debian's package $package into $cache" >&2
  local tmp
  mkdir -p "$cache" && tmp="$(mktemp -d "$cache/.fetch.XXXXXX")" || return 1
  if ! (cd "$tmp" && apt-get download "$package") >"$tmp/apt.log" 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      echo "apt-get download $package failed: $(tail -n 2 "$tmp/apt.log" | tr '\n' ' ')" >&2
      echo "If the package lists are missing or stale, run \`apt-get update\` as root" \
           "(as root this script does it), or $advice" >&2
      rm -rf "$tmp"; return 1
    fi
    echo "== $name: apt-get download failed; apt-get update, then once more" >&2
    if ! apt-get update -qq >"$tmp/apt.log" 2>&1 \
        || ! (cd "$tmp" && apt-get download "$package") >>"$tmp/apt.log" 2>&1; then
      echo "could not download Debian's $package package even after apt-get update:" >&2
      tail -n 5 "$tmp/apt.log" >&2
      echo "Is a Debian mirror reachable? Otherwise $advice" >&2
      rm -rf "$tmp"; return 1
    fi
  fi
  local debs=("$tmp/${package}"_*.deb)
  if [ ! -f "${debs[0]}" ] || ! dpkg-deb -x "${debs[0]}" "$tmp/root" \
      || ! _vpipe_debian_runs "$tmp/root/usr/bin/$name" "${version_args[@]}"; then
    echo "could not unpack a working usr/bin/$name from ${debs[0]##*/}: $advice" >&2
    rm -rf "$tmp"; return 1
  fi
  # Into place in one rename, so an interrupted run never leaves half a binary behind; a run
  # alongside may have been first, which is fine.
  [ -x "$binary" ] || rm -rf "$cache/root"
  mv -T "$tmp/root" "$cache/root" 2>/dev/null || true
  mv -f "${debs[0]}" "$cache/"
  rm -rf "$tmp"
  _vpipe_debian_runs "$binary" "${version_args[@]}" || {
    echo "$binary does not run: $advice" >&2; return 1; }
  echo "$binary"
}
