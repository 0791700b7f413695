#!/usr/bin/env bash
# Rewrite the field-policy tables in docs/agents/*.md from vpipe_proxy/llmswitch/field_policy.py.
# Run it after changing a policy; tests/unit/test_field_policy.py fails until you do.
set -euo pipefail
source "$(dirname "$0")/lib/venv.sh"
python - docs/agents/*.md <<'PY'
import pathlib
import sys

from vpipe_proxy.llmswitch.policy_docs import refresh

for name in sys.argv[1:]:
    path = pathlib.Path(name)
    text = path.read_text()
    new = refresh(text)
    if new != text:
        path.write_text(new)
        print(f"wrote {path}")
PY
