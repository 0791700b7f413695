"""The `vpipe` command: validate, render, explain as a user runs them (subprocess), --help.

Aspects: exit codes; validate lists every problem at once; render is deterministic and its
output is the ConfigMap the proxy can read; explain names the chosen route; serve prints its
URL and answers the openai SDK.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from openai import OpenAI

from tests.support.proxy import pipeline, route, write_resources
from vpipe_api.document import parse_document

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def vpipe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vpipe_cli.main", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_validate_examples_ok() -> None:
    for folder in (EXAMPLES, EXAMPLES / "providers", EXAMPLES / "claude-code",
                   EXAMPLES / "openai-to-anthropic", EXAMPLES / "rollout"):
        result = vpipe("validate", "-f", str(folder))
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("OK: ")


def test_validate_reports_every_problem(tmp_path: Path) -> None:
    write_resources(tmp_path, [
        pipeline("p", {"family": "nope"}),
        route("a", ["re:("], "p"),
        route("b", ["x"], "missing"),
    ])
    result = vpipe("validate", "-f", str(tmp_path))
    assert result.returncode == 1
    assert "3 problems" in result.stderr
    assert "Pipeline/default/p spec.modules[0].provider.family: unknown family 'nope'" in result.stderr
    assert "Route/default/a spec.match.models[0]" in result.stderr
    assert "Route/default/b spec.pipeline: Pipeline 'missing' does not exist" in result.stderr


def test_render_is_deterministic_and_loadable() -> None:
    first = vpipe("render", "-f", str(EXAMPLES))
    second = vpipe("render", "-f", str(EXAMPLES))
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    manifest = yaml.safe_load(first.stdout)
    assert manifest["kind"] == "ConfigMap" and manifest["metadata"]["name"] == "vpipe-config"
    document = parse_document(manifest["data"]["config.json"])
    assert manifest["metadata"]["annotations"]["vpipe.io/revision"] == document.revision


def test_explain_names_route() -> None:
    result = vpipe("explain", "-f", str(EXAMPLES), "--model", "gpt-4o-mini")
    assert result.returncode == 0
    assert "-> route 'mini' -> pipeline 'mock-renamed'" in result.stdout
    assert "sends model" in result.stdout
    missing = vpipe("explain", "-f", str(EXAMPLES), "--model", "claude")
    assert missing.returncode == 1
    assert "No route takes model 'claude'" in missing.stdout


def test_explain_shows_the_upstream_model_a_new_agent_name_becomes() -> None:
    result = vpipe("explain", "-f", str(EXAMPLES / "claude-code"), "--model", "claude-opus-9-1",
                   "--protocol", "anthropic-messages")
    assert result.returncode == 0, result.stderr
    assert "provider 'deepseek' sends model 'deepseek-reasoner' (modelMap key 'claude-opus-*')" \
        in result.stdout
    result = vpipe("explain", "-f", str(EXAMPLES / "codex"), "--model", "gpt-7-codex",
                   "--protocol", "openai-responses")
    assert "sends model 'deepseek-chat' (modelMap key '*')" in result.stdout


def test_crds_prints_both_definitions() -> None:
    result = vpipe("crds")
    assert result.returncode == 0
    kinds = [d["spec"]["names"]["kind"] for d in yaml.safe_load_all(result.stdout)]
    assert kinds == ["Pipeline", "Route"]


def test_help_lists_commands() -> None:
    result = vpipe("--help")
    assert result.returncode == 0
    for command in ("serve", "validate", "render", "explain", "crds"):
        assert command in result.stdout


@pytest.mark.timeout(60)
def test_serve_local_mode_answers_the_sdk() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "vpipe_cli.main", "serve", "-f", str(EXAMPLES),
         "--port", "0", "--admin-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        try:
            assert process.stdout is not None
            banner = []
            for line in process.stdout:
                banner.append(line)
                if line.startswith("Press Ctrl+C"):
                    break
            text = "".join(banner)
            url = text.split("client API:")[1].split()[0]
            assert "curl -s " + url.removesuffix("/v1") in text
            with OpenAI(base_url=url, api_key="unused", max_retries=0) as client:
                answer = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
            assert answer.choices[0].message.content == (
                "Mock reply from mock-small. You said: hello")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    assert process.returncode == 0
