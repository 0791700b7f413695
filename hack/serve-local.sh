#!/usr/bin/env bash
# The main job: the proxy in local mode on the built-in mock provider (no cluster, no API key).
# Extra arguments go to `vpipe serve` (e.g. --port 8081).
source "$(dirname "$0")/lib/venv.sh"
exec vpipe serve -f examples/ "$@"
