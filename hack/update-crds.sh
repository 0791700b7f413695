#!/usr/bin/env bash
# Regenerate crds/ from the CR models (vpipe_api.resources) via vpipe_operator.crds.
# Run it after changing a model; hack/verify-crds.sh (and tests/unit/test_crds.py) fail until
# you do. An argument writes to that folder instead (verify-crds.sh uses a temporary one).
set -euo pipefail
source "$(dirname "$0")/lib/venv.sh"
out="${1:-crds}"
mkdir -p "$out"
python - "$out" <<'PY'
import pathlib
import sys

from vpipe_operator import crds

out = pathlib.Path(sys.argv[1])
rendered = crds.render_crds()
for stale in out.glob("*.yaml"):
    if stale.name not in rendered:  # a kind that went away
        stale.unlink()
for name, text in rendered.items():
    (out / name).write_text(text, encoding="utf-8")
    print(f"wrote {out / name}")
PY
# The chart ships the same CRDs as templates (so `helm upgrade` upgrades them).
if [ "$out" = "crds" ]; then
  cp crds/*.yaml charts/vpipe/files/crds/
fi
