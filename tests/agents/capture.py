"""Refresh tests/fixtures/agents from a real run: VPIPE_CAPTURE_AGENTS=1 pytest tests/agents.

The passthrough runs (Claude Code to an Anthropic upstream, Codex to a Responses upstream) see
exactly the body the agent sent; this writes both turns, sanitized: ids, temp paths and 64-hex
device ids replaced, texts over 400 characters cut. The headers are the agent's own, captured
once with the agent pointed straight at a fake upstream (vpipe forwards only a few of them);
a refresh keeps them, and a new fixture starts with what reached the upstream.
The unit tests in tests/unit/test_field_policy.py read these files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import orjson

from tests.support.fake_upstream import Seen

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents"
_HEADERS = frozenset({"accept", "content-type", "user-agent", "anthropic-beta",
                      "anthropic-version", "x-app", "originator", "x-codex-beta-features"})
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _clean(value: Any, tmp: str) -> Any:
    if isinstance(value, str):
        value = _UUID.sub("00000000-0000-0000-0000-000000000000", value.replace(tmp, "/tmp"))
        value = re.sub(r"[0-9a-f]{64}", "0" * 64, value)
        return value if len(value) <= 400 else \
            value[:300] + f" [... {len(value) - 300} characters cut for the fixture]"
    if isinstance(value, list):
        return [_clean(v, tmp) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v, tmp) for k, v in value.items()}
    return value


def save(name: str, seen: list[Seen], model: str, tmp: Path) -> None:
    """Write `seen` (the upstream's view of a passthrough run) as fixture `name`, when asked."""
    if not os.environ.get("VPIPE_CAPTURE_AGENTS"):
        return
    path = FIXTURES / f"{name}.json"
    headers = {k.lower(): v for k, v in seen[-1].headers.items() if k.lower() in _HEADERS}
    if path.exists():
        headers = orjson.loads(path.read_bytes())["requests"][0]["headers"]
    requests = [{"path": s.path, "headers": headers,
                 "body": {**_clean(s.body, str(tmp)), "model": model}} for s in seen]
    data = {"comment": f"What {name} sent to vpipe for a two-turn task (turn 1, then turn 2 "
            "carrying the tool result), captured by tests/agents (VPIPE_CAPTURE_AGENTS=1) with a "
            "passthrough provider. Ids, paths and long texts are sanitized; the structure and "
            "every field are as sent; headers: the agent's own (credentials and ids left out).",
            "requests": requests}
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
