#!/usr/bin/env bash
# The whole test suite: lint, types, architecture contracts, then every test tier.
# Extra arguments go to pytest (e.g. -k reload, tests/unit).
source "$(dirname "$0")/lib/venv.sh"
source "$(dirname "$0")/lib/prometheus.sh"  # a real Prometheus for the canary-analysis tests
source "$(dirname "$0")/lib/agents.sh"  # Claude Code and Codex CLI for tests/agents (skipped without npm)
echo "== ruff"; ruff check .
echo "== mypy --strict"; mypy
echo "== import-linter"; lint-imports
echo "== pytest"; python -m pytest "$@"
