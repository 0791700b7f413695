"""Cost of protocol conversion (llmswitch), in process: prints figures, asserts nothing.

Measures, on one core: a ~4 KB Anthropic Messages request converted to OpenAI Chat and its
reply converted back (per request), and streamed OpenAI chunks converted to Anthropic events
(per event), plus the same for OpenAI Chat -> Anthropic and Responses -> Chat; and the real
requests Claude Code and Codex CLI sent (tests/fixtures/agents), converted whole and through the
field policy's screen alone (what the policy adds to a conversion).
Run: python bench/bench_conversion.py
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from vpipe_proxy.llmswitch.anthropic_openai import request_to_openai, response_to_anthropic
from vpipe_proxy.llmswitch.anthropic_openai_stream import OpenAIToAnthropicStream
from vpipe_proxy.llmswitch.field_policy import ANTHROPIC_TO_CHAT, RESPONSES_TO_CHAT, Screen
from vpipe_proxy.llmswitch.openai_anthropic import request_to_anthropic, response_to_openai
from vpipe_proxy.llmswitch.openai_anthropic_stream import AnthropicToOpenAIStream
from vpipe_proxy.llmswitch.responses_openai import request_to_chat, response_from_chat
from vpipe_proxy.llmswitch.responses_openai_stream import ChatToResponsesStream

TOOL = {"name": "lookup", "description": "Look something up",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}


def anthropic_request() -> dict[str, Any]:
    turns: list[dict[str, Any]] = []
    for i in range(6):
        turns.append({"role": "user", "content": f"Question {i}: " + "lorem ipsum " * 25})
        turns.append({"role": "assistant", "content": [
            {"type": "text", "text": "Let me check. " + "dolor sit amet " * 10},
            {"type": "tool_use", "id": f"t{i}", "name": "lookup", "input": {"q": f"q{i}"}}]})
        turns.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"t{i}", "content": "result " * 10}]})
    turns.append({"role": "user", "content": "And finally?"})
    return {"model": "claude", "max_tokens": 1024, "system": "You are helpful. " * 10,
            "tools": [TOOL], "messages": turns}


CHAT_REPLY = {"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
              "message": {"role": "assistant", "content": "An answer. " * 40}}],
              "usage": {"prompt_tokens": 900, "completion_tokens": 80}}
ANTHROPIC_REPLY = {"id": "msg_1", "model": "m", "stop_reason": "end_turn",
                   "content": [{"type": "text", "text": "An answer. " * 40}],
                   "usage": {"input_tokens": 900, "output_tokens": 80}}


AGENTS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "agents"


def agent_request(name: str) -> bytes:
    """The second turn an agent sent (tool result included), as raw JSON."""
    return orjson.dumps(orjson.loads((AGENTS / name).read_bytes())["requests"][1]["body"])


def per_call(fn: Callable[[], object], n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    request = anthropic_request()
    raw = orjson.dumps(request)
    chat_request = request_to_openai(request)
    n = 5000
    print(f"conditions: {platform.python_implementation()} {platform.python_version()}, "
          f"one process, in-process calls (no I/O), request {len(raw)} bytes JSON")
    rows = [
        ("anthropic->chat request + reply (parse+convert+dump)",
         per_call(lambda: (orjson.dumps(request_to_openai(orjson.loads(raw))),
                           orjson.dumps(response_to_anthropic(CHAT_REPLY, "m"))), n)),
        ("chat->anthropic request + reply",
         per_call(lambda: (orjson.dumps(request_to_anthropic(chat_request)),
                           orjson.dumps(response_to_openai(ANTHROPIC_REPLY, "m"))), n)),
        ("responses->chat request + reply",
         per_call(lambda: (orjson.dumps(request_to_chat({"model": "m", "input": "hi " * 1000})),
                           orjson.dumps(response_from_chat(CHAT_REPLY, {"model": "m"}))), n)),
    ]
    claude = agent_request("claude-code-2.1.332.json")
    codex = agent_request("codex-0.171.0.json")
    claude_body, codex_body = orjson.loads(claude), orjson.loads(codex)
    rows += [
        (f"Claude Code request ({len(claude) // 1024} KB) anthropic->chat, parse+convert+dump",
         per_call(lambda: orjson.dumps(request_to_openai(orjson.loads(claude))), n // 5)),
        ("  of which the field policy screen",
         per_call(lambda: Screen(ANTHROPIC_TO_CHAT).fields(claude_body), n)),
        (f"Codex request ({len(codex) // 1024} KB) responses->chat, parse+convert+dump",
         per_call(lambda: orjson.dumps(request_to_chat(orjson.loads(codex))), n // 5)),
        ("  of which the field policy screen",
         per_call(lambda: Screen(RESPONSES_TO_CHAT).fields(codex_body), n)),
    ]
    chunk = b'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"word "}}]}\n\n'
    event = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
             b'"delta":{"type":"text_delta","text":"word "}}\n\n')
    events = 20_000
    to_anthropic = OpenAIToAnthropicStream("m")
    to_anthropic.feed(chunk)
    from_anthropic = AnthropicToOpenAIStream("m", include_usage=False)
    from_anthropic.feed(b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n')
    to_responses = ChatToResponsesStream({"model": "m"})
    to_responses.feed(chunk)
    rows += [
        ("stream chat->anthropic, per event", per_call(lambda: to_anthropic.feed(chunk), events)),
        ("stream anthropic->chat, per event", per_call(lambda: from_anthropic.feed(event), events)),
        ("stream chat->responses, per event", per_call(lambda: to_responses.feed(chunk), events)),
    ]
    print(f"{'conversion':<64} {'µs':>8}")
    for name, micros in rows:
        print(f"{name:<64} {micros:>8.1f}")
    print("targets: <= 300 µs per 4 KB non-streaming request, <= 50 µs per streamed event")


if __name__ == "__main__":
    main()
