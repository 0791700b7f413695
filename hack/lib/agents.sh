#!/usr/bin/env bash
# The coding agents the agent tests drive through a real proxy (tests/agents/), fetched once:
# Claude Code and Codex CLI from npm at pinned versions, unpacked under .cache/agents/<versions>/.
# Each npm package pulls its platform package (optionalDependencies), which ships a native
# binary; the tests run that binary directly, so no newer Node than npm's own is needed.
#   1. $VPIPE_TEST_CLAUDE / $VPIPE_TEST_CODEX, if set, are used as they are;
#   2. otherwise the cached binaries, when they run and report the pinned versions;
#   3. otherwise `npm install` into a temp dir beside the cache, moved into place in one rename.
# Once there, no npm call is made. Use:
#   source hack/lib/agents.sh   exports VPIPE_TEST_CLAUDE and VPIPE_TEST_CODEX (hack/test.sh does
#                               this); when they cannot be had it exports VPIPE_AGENTS_SKIP with
#                               the reason instead, and the agent tests skip saying so
#   bash hack/lib/agents.sh     prints both paths, or fails with the reason
# Set VPIPE_AGENTS_CACHE to keep them elsewhere.

_VPIPE_AGENTS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VPIPE_CLAUDE_CODE_VERSION="2.1.332"
VPIPE_CODEX_VERSION="0.171.0"

_vpipe_agent_reports() {  # binary, version: does it run and say that version?
  [ -x "$1" ] && "$1" --version 2>/dev/null | grep -qF "$2"
}

_vpipe_agent_binaries() {  # node_modules dir -> "claude codex" paths of the native binaries
  local modules="$1" claude="" codex="" candidate
  for candidate in "$modules"/@anthropic-ai/claude-code-*/claude; do
    _vpipe_agent_reports "$candidate" "$VPIPE_CLAUDE_CODE_VERSION" && { claude="$candidate"; break; }
  done
  for candidate in "$modules"/@openai/codex-*/vendor/*/bin/codex; do
    _vpipe_agent_reports "$candidate" "$VPIPE_CODEX_VERSION" && { codex="$candidate"; break; }
  done
  [ -n "$claude" ] && [ -n "$codex" ] && echo "$claude $codex"
}

vpipe_agents() {
  if [ -n "${VPIPE_TEST_CLAUDE:-}" ] && [ -n "${VPIPE_TEST_CODEX:-}" ]; then
    echo "$VPIPE_TEST_CLAUDE $VPIPE_TEST_CODEX"; return 0
  fi
  local cache="${VPIPE_AGENTS_CACHE:-$_VPIPE_AGENTS_ROOT/.cache/agents}"
  local home="$cache/claude-code-$VPIPE_CLAUDE_CODE_VERSION-codex-$VPIPE_CODEX_VERSION"
  local found
  if found="$(_vpipe_agent_binaries "$home/node_modules")"; then
    echo "$found"; return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm is not installed: install Node.js with npm, or set VPIPE_TEST_CLAUDE and" \
         "VPIPE_TEST_CODEX to the agents' binaries" >&2
    return 1
  fi
  echo "== agents: npm install @anthropic-ai/claude-code@$VPIPE_CLAUDE_CODE_VERSION" \
       "@openai/codex@$VPIPE_CODEX_VERSION into $home (once)" >&2
  local tmp
  mkdir -p "$cache" && tmp="$(mktemp -d "$cache/.fetch.XXXXXX")" || return 1
  # The timeout keeps an unreachable registry from stalling the whole test run.
  if ! timeout 300 npm install --prefix "$tmp" --no-save --no-audit --no-fund \
      --loglevel=error "@anthropic-ai/claude-code@$VPIPE_CLAUDE_CODE_VERSION" \
      "@openai/codex@$VPIPE_CODEX_VERSION" >"$tmp/npm.log" 2>&1; then
    echo "npm install of the agents failed (is the npm registry reachable?):" \
         "$(tail -n 3 "$tmp/npm.log" | tr '\n' ' ')" >&2
    rm -rf "$tmp"; return 1
  fi
  if ! _vpipe_agent_binaries "$tmp/node_modules" >/dev/null; then
    echo "npm installed the agents, but no native claude $VPIPE_CLAUDE_CODE_VERSION and codex" \
         "$VPIPE_CODEX_VERSION binary for this platform runs (see $cache)" >&2
    rm -rf "$tmp"; return 1
  fi
  # Into place in one rename, so an interrupted run never leaves half an install behind; a run
  # alongside may have been first, which is fine.
  [ -d "$home" ] && ! _vpipe_agent_binaries "$home/node_modules" >/dev/null && rm -rf "$home"
  mv -T "$tmp" "$home" 2>/dev/null || rm -rf "$tmp"
  _vpipe_agent_binaries "$home/node_modules" || {
    echo "the agents in $home do not run" >&2; return 1; }
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  vpipe_agents
else
  if _vpipe_agents_found="$(vpipe_agents)"; then
    read -r VPIPE_TEST_CLAUDE VPIPE_TEST_CODEX <<<"$_vpipe_agents_found"
    export VPIPE_TEST_CLAUDE VPIPE_TEST_CODEX
    echo "== agents: claude $VPIPE_CLAUDE_CODE_VERSION, codex $VPIPE_CODEX_VERSION"
  else
    export VPIPE_AGENTS_SKIP="Claude Code / Codex CLI could not be installed from npm (see above)"
    echo "== agents: not available; the agent tests will be skipped" >&2
  fi
  unset _vpipe_agents_found
fi
