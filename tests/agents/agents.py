"""Claude Code and Codex CLI as test clients: where their binaries are, and how to run each one
non-interactively, confined to a temp HOME and to the one base URL a test gives it.

hack/lib/agents.sh installs both from npm (pinned, cached under .cache/agents/) and exports
VPIPE_TEST_CLAUDE / VPIPE_TEST_CODEX; run under plain pytest, the cache is looked up here too.
Neither agent may reach the internet: telemetry, auto-update, error reporting and other
nonessential traffic are switched off, the environment is built from scratch (no proxies, no
keys of the developer's), and each run has a timeout.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
CLAUDE_CODE_VERSION = "2.1.332"  # keep in step with hack/lib/agents.sh
CODEX_VERSION = "0.171.0"
RUN_TIMEOUT = 45.0  # seconds per agent run; a two-turn task takes about one


def _cached(pattern: str) -> Path | None:
    cache = Path(os.environ.get("VPIPE_AGENTS_CACHE", ROOT / ".cache" / "agents"))
    home = cache / f"claude-code-{CLAUDE_CODE_VERSION}-codex-{CODEX_VERSION}" / "node_modules"
    return next(iter(sorted(home.glob(pattern))), None)


def binary(name: str) -> Path:
    """The agent's native binary, or a pytest skip saying how to get it."""
    env, pattern = {"claude": ("VPIPE_TEST_CLAUDE", "@anthropic-ai/claude-code-*/claude"),
                    "codex": ("VPIPE_TEST_CODEX", "@openai/codex-*/vendor/*/bin/codex")}[name]
    given = os.environ.get(env)
    path = Path(given) if given else _cached(pattern)
    if path is None or not path.is_file():
        reason = os.environ.get("VPIPE_AGENTS_SKIP") or (
            f"{name} is not installed: run `bash hack/lib/agents.sh` (needs npm and its "
            f"registry) or set {env}")
        pytest.skip(reason)
    return path


class Trap:
    """An HTTP(S) proxy on 127.0.0.1 that refuses everything and remembers who asked.

    The agents get it as HTTPS_PROXY/HTTP_PROXY with NO_PROXY=127.0.0.1, so the base URL is
    reached directly and any call to the internet lands here instead (and fails)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        self.seen.append(line.decode(errors="replace").strip())
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> Trap:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


def _base_env(home: Path, trap: str) -> dict[str, str]:
    return {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "TERM": "dumb", "TMPDIR": str(home), "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost", "HTTPS_PROXY": trap, "HTTP_PROXY": trap,
            "https_proxy": trap, "http_proxy": trap, "ALL_PROXY": trap}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


async def _run(argv: list[str], env: dict[str, str], cwd: Path) -> Run:
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
        raise AssertionError(f"{argv[0]} ran longer than {RUN_TIMEOUT}s; stderr: "
                             f"{err.decode(errors='replace')[-2000:]}") from None
    return Run(process.returncode or 0, out.decode(errors="replace"),
               err.decode(errors="replace"))


def _claude_env(home: Path, base_url: str, trap: str) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {**_base_env(home, trap), "ANTHROPIC_BASE_URL": base_url,
           "ANTHROPIC_API_KEY": "sk-ant-vpipe-test", "CLAUDE_CONFIG_DIR": str(home / ".claude"),
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
           "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1",
           "DISABLE_BUG_COMMAND": "1", "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1"}


async def claude(base_url: str, prompt: str, workdir: Path, home: Path, trap: Trap,
                 model: str = "claude-opus-5-5", ok: bool = True) -> dict[str, object]:
    """`claude -p PROMPT --output-format json` against `base_url`; its JSON result (`ok`: it
    must have succeeded)."""
    env = _claude_env(home, base_url, trap.url)
    run = await _run([str(binary("claude")), "-p", prompt, "--output-format", "json",
                      "--model", model, "--allowedTools", "Read", "--max-turns", "4"],
                     env, workdir)
    assert run.returncode == 0 or not ok, f"claude failed ({run.returncode}): {run.stdout[-2000:]} " \
        f"{run.stderr[-2000:]}"
    result = orjson.loads(run.stdout)
    assert isinstance(result, dict)
    return result


def _codex_env(home: Path, base_url: str, model: str, trap: str) -> dict[str, str]:
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(f"""\
model = "{model}"
model_provider = "vpipe"
check_for_update_on_startup = false

[analytics]
enabled = false

[features]
plugins = false  # else it clones its plugin marketplace from github.com

[model_providers.vpipe]
name = "vpipe"
base_url = "{base_url}"
wire_api = "responses"
env_key = "VPIPE_TEST_KEY"
request_max_retries = 0
stream_max_retries = 0
""")
    return {**_base_env(home, trap), "CODEX_HOME": str(codex_home), "VPIPE_TEST_KEY": "sk-vpipe-test"}


def _last_message(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def codex(base_url: str, prompt: str, workdir: Path, home: Path, trap: Trap,
                model: str = "gpt-5-codex") -> tuple[str, list[dict[str, Any]]]:
    """`codex exec --json PROMPT` with a provider at `base_url` (wire_api responses); the last
    message it printed, and its JSON events (items run, turn usage)."""
    env = _codex_env(home, base_url, model, trap.url)
    last = home / "last-message.txt"
    run = await _run([str(binary("codex")), "exec", "--skip-git-repo-check", "--ephemeral",
                      "--strict-config", "--dangerously-bypass-approvals-and-sandbox", "--json",
                      "-C", str(workdir), "-o", str(last), prompt], env, workdir)
    assert run.returncode == 0, f"codex failed ({run.returncode}): {run.stdout[-2000:]} " \
        f"{run.stderr[-3000:]}"
    events = [orjson.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    return _last_message(last), events
