#!/usr/bin/env bash
# The whole test suite: lint, types, architecture contracts, then every test tier.
# Extra arguments go to pytest (e.g. -k reload, tests/unit).
source "$(dirname "$0")/lib/venv.sh"
source "$(dirname "$0")/lib/prometheus.sh"  # a real Prometheus for the canary-analysis tests
source "$(dirname "$0")/lib/agents.sh"  # Claude Code and Codex CLI for tests/agents (skipped without npm)
# tests/kapi runs on a real kube-apiserver when ../shared/kapi (or $VPIPE_KAPI) is there; its
# etcd is fetched here once, so a missing one is reported up front (the tier then skips).
if [ -f "${VPIPE_KAPI:-$ROOT/../shared/kapi/kapi}" ]; then
  source "$(dirname "$0")/lib/etcd.sh" || echo "== etcd: none (see above): tests/kapi will skip"
else
  echo "== kapi: ${VPIPE_KAPI:-$ROOT/../shared/kapi/kapi} absent: tests/kapi will skip"
fi
echo "== ruff"; ruff check .
echo "== mypy --strict"; mypy
echo "== import-linter"; lint-imports
echo "== pytest"; python -m pytest "$@"
