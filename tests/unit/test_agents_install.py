"""hack/lib/agents.sh when the agents cannot be had: a clear reason, and a skip, not a failure.

Aspects: with an unreachable npm registry and an empty cache the script fails saying what
failed and asking whether the registry is reachable, leaves no half-made install behind, and,
sourced as hack/test.sh does, exports VPIPE_AGENTS_SKIP with the reason instead of the
binaries; given binaries in VPIPE_TEST_CLAUDE / VPIPE_TEST_CODEX are used without npm.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "lib" / "agents.sh"


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("VPIPE_TEST_CLAUDE", "VPIPE_TEST_CODEX", "VPIPE_AGENTS_SKIP")}
    # A registry nothing listens on, and no retries: the failure comes in seconds.
    env.update(VPIPE_AGENTS_CACHE=str(cache), npm_config_registry="http://127.0.0.1:9/",
               npm_config_fetch_retries="0", npm_config_fetch_timeout="2000",
               npm_config_cache=str(cache / "npm-cache"))
    return env


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
@pytest.mark.timeout(120)
def test_unreachable_registry_is_a_clear_reason_and_a_skip(tmp_path: Path) -> None:
    cache = tmp_path / "agents"
    run = subprocess.run(["bash", str(SCRIPT)], env=_env(cache), capture_output=True,
                         text=True, timeout=110, check=False)
    assert run.returncode != 0
    assert "npm install of the agents failed (is the npm registry reachable?)" in run.stderr
    assert [p.name for p in cache.iterdir() if p.name != "npm-cache"] == []
    sourced = subprocess.run(
        ["bash", "-c", f'source "{SCRIPT}"; echo "skip=$VPIPE_AGENTS_SKIP";'
                       ' echo "claude=${VPIPE_TEST_CLAUDE:-}"'],
        env=_env(cache), capture_output=True, text=True, timeout=110, check=False)
    assert sourced.returncode == 0
    assert "skip=Claude Code / Codex CLI could not be installed from npm" in sourced.stdout
    assert "claude=\n" in sourced.stdout
    assert "the agent tests will be skipped" in sourced.stderr


def test_given_binaries_are_used_without_npm(tmp_path: Path) -> None:
    env = {**_env(tmp_path), "VPIPE_TEST_CLAUDE": "/opt/claude", "VPIPE_TEST_CODEX": "/opt/codex",
           "PATH": "/usr/bin:/bin"}
    run = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                         timeout=30, check=False)
    assert run.stdout.split() == ["/opt/claude", "/opt/codex"]
