"""A fake OpenAI-compatible upstream whose behaviour is chosen by the model name.

The proxy forwards the model name, so a test picks the upstream's behaviour per request:

- any other name: a normal completion (`fake says: <last user text>`), streamed in 3 chunks
- `status-<code>`: answer that HTTP status with an OpenAI-shaped error body
- `status-<code>-text`: the same status with a plain-text body
- `slow-<seconds>`: wait before sending headers
- `drop-<n>`: stream n chunks, then cut the connection mid-stream
- `stall-<n>`: stream n chunks, then hang until the client goes away
- `pause-<seconds>`: stream one chunk, wait, then finish normally
- `hold`: stream the words, set `holding`, then finish only once the test sets `release`
- `tools`: call the tool `get_weather`; streamed, its arguments arrive in fragments
- `reasoning`: reasoning_content first, then the answer (as DeepSeek's reasoner does)
- `agent` (all three protocols; or any of `agent_models`): a coding agent's two-turn task
  scripted by `agent_calls`
  (tool name -> arguments): a tool call first, then `agent saw: <tool result>`; see
  agent_script.py
`POST /v1/responses` answers with the id `resp_<name>`; with `stores_responses` it keeps
state as OpenAI's does: every reply gets a new id, and a `previous_response_id` this upstream
did not answer is a 404 (so a thread sent to the wrong provider fails).
`POST /v1/messages` answers the same names in Anthropic's shape (normal, `status-<code>`,
`drop-<n>`, `tools`). Every request is recorded (path, headers, JSON body) for assertions.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.support import agent_script


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeUpstream:
    requests: list[Seen] = field(default_factory=list)
    streams_cancelled: int = 0
    stream_cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    name: str = "fake"
    stores_responses: bool = False
    response_ids: set[str] = field(default_factory=set)
    agent_calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    agent_models: set[str] = field(default_factory=lambda: {agent_script.AGENT_MODEL})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        app.router.add_post("/v1/responses", self.responses)
        return app

    async def responses(self, request: web.Request) -> web.StreamResponse:
        """A Responses API upstream: text, or a function call for model `tools`."""
        body = await request.json()
        self.requests.append(Seen(request.path, dict(request.headers), body))
        model: str = body["model"]
        if model in self.agent_models:
            return await self._agent(request, body, "openai-responses")
        previous = body.get("previous_response_id")
        if self.stores_responses and previous is not None and previous not in self.response_ids:
            return web.json_response({"error": {
                "message": f"Previous response with id '{previous}' not found.",
                "type": "invalid_request_error", "param": "previous_response_id",
                "code": "previous_response_not_found"}}, status=404)
        rid = f"resp_{self.name}"
        if self.stores_responses:
            rid += f"_{len(self.response_ids)}"
            self.response_ids.add(rid)
        items = body.get("input")
        said = items if isinstance(items, str) else next(
            (i["content"] if isinstance(i["content"], str) else i["content"][0]["text"]
             for i in reversed(items) if i.get("role") == "user"), "")
        text = f"{self.name} says: {said}"
        output: list[dict[str, Any]] = [{"type": "message", "id": "msg_1", "role": "assistant",
                                         "status": "completed", "content": [
                                             {"type": "output_text", "text": text,
                                              "annotations": []}]}]
        if model == "tools":
            output.append({"type": "function_call", "id": "fc_1", "call_id": "call_9",
                           "name": "get_weather", "arguments": '{"city": "Oslo"}',
                           "status": "completed"})
        response = {"id": rid, "object": "response", "created_at": 1, "model": model,
                    "status": "completed", "output": output,
                    "usage": {"input_tokens": 6, "output_tokens": 3, "total_tokens": 9,
                              "input_tokens_details": {"cached_tokens": 1},
                              "output_tokens_details": {"reasoning_tokens": 0}}}
        if not body.get("stream"):
            return web.json_response(response)
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        seq = 0

        async def send(kind: str, **data: Any) -> None:
            nonlocal seq
            await stream.write(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(
                {"type": kind, "sequence_number": seq, **data}) + b"\n\n")
            seq += 1

        await send("response.created", response={**response, "status": "in_progress",
                                                  "output": []})
        await send("response.output_item.added", output_index=0,
                   item={**output[0], "content": []})
        for word in text.split(" "):
            await send("response.output_text.delta", item_id="msg_1", output_index=0,
                       content_index=0, delta=word + " ")
        if model == "tools":
            await send("response.output_item.added", output_index=1,
                       item={**output[1], "arguments": ""})
            for part in ('{"city"', ': "Oslo"}'):
                await send("response.function_call_arguments.delta", item_id="fc_1",
                           output_index=1, delta=part)
        await send("response.completed", response=response)
        await stream.write_eof()
        return stream

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Seen(request.path, dict(request.headers), body))
        return web.json_response({"input_tokens": 10 + len(body["messages"])})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Seen(request.path, dict(request.headers), body))
        model: str = body["model"]
        if model in self.agent_models:
            return await self._agent(request, body, "anthropic-messages")
        kind, _, arg = model.partition("-")
        if kind == "status":
            return web.json_response(
                {"type": "error", "error": {"type": "fake_error",
                                            "message": f"fake anthropic says {arg}"}},
                status=int(arg))
        text = "fake says: " + _last_user_text(body)
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text}]
        stop = "end_turn"
        if kind == "tools":
            blocks = [{"type": "text", "text": "Checking."},
                      {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                       "input": {"city": "Paris", "days": 3}}]
            stop = "tool_use"
        usage = {"input_tokens": 5, "output_tokens": 4, "cache_read_input_tokens": 2,
                 "cache_creation_input_tokens": 0}
        message = {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                   "content": blocks, "stop_reason": stop, "stop_sequence": None,
                   "usage": usage}
        if not body.get("stream"):
            return web.json_response(message)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(kind: str, data: dict[str, Any]) -> None:
            await response.write(b"event: " + kind.encode() + b"\ndata: "
                                 + orjson.dumps({"type": kind, **data}) + b"\n\n")

        await send("message_start", {"message": {**message, "content": [], "stop_reason": None,
                                                 "usage": {**usage, "output_tokens": 0}}})
        await send("ping", {})
        sent = 0
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                await send("content_block_start", {"index": index,
                                                   "content_block": {"type": "text", "text": ""}})
                for word in block["text"].split(" "):
                    if kind == "drop" and sent == int(arg):
                        assert request.transport is not None
                        request.transport.abort()
                        return response
                    await send("content_block_delta", {"index": index, "delta": {
                        "type": "text_delta", "text": word if sent == 0 else " " + word}})
                    sent += 1
            else:
                await send("content_block_start", {"index": index, "content_block": {
                    "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
                for fragment in ('{"city": "Par', 'is", "days"', ': 3}'):
                    await send("content_block_delta", {"index": index, "delta": {
                        "type": "input_json_delta", "partial_json": fragment}})
            await send("content_block_stop", {"index": index})
        await send("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": 4}})
        await send("message_stop", {})
        await response.write_eof()
        return response

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Seen(request.path, dict(request.headers), body))
        return web.json_response({
            "object": "list", "model": body["model"],
            "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.5, 0.25]}],
            "usage": {"prompt_tokens": 2, "total_tokens": 2},
        })

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Seen(request.path, dict(request.headers), body))
        model: str = body["model"]
        if model in self.agent_models:
            return await self._agent(request, body, "openai-chat")
        kind, _, arg = model.partition("-")
        if kind == "status":
            code, _, style = arg.partition("-")
            if style == "text":
                return web.Response(status=int(code), text="upstream exploded")
            return web.json_response(
                {"error": {"message": f"fake upstream says {code}", "type": "fake_error",
                           "param": None, "code": f"fake_{code}"}},
                status=int(code), headers={"retry-after": "7"} if code == "429" else None)
        if kind == "slow":
            await asyncio.sleep(float(arg))
        if kind in ("tools", "reasoning"):
            return await self._scripted(request, body, kind)
        text = _last_user_text(body)
        if not body.get("stream"):
            return web.json_response(_completion(model, f"fake says: {text}"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        words = ["fake", " says:", f" {text}"]
        limit = int(arg) if kind in ("drop", "stall") else len(words)
        try:
            for word in words[:limit]:
                await response.write(_chunk(model, {"content": word}))
                await asyncio.sleep(float(arg) if kind == "pause" and word == "fake" else 0)
            if kind == "drop":
                assert request.transport is not None
                request.transport.abort()
                return response
            if kind == "stall":
                await asyncio.sleep(3600)
            if kind == "hold":
                self.holding.set()
                await self.release.wait()
            await response.write(_chunk(model, {}, "stop"))
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            self.streams_cancelled += 1
            self.stream_cancelled.set()
            raise
        return response


    async def _agent(self, request: web.Request, body: dict[str, Any],
                     protocol: str) -> web.StreamResponse:
        model = body["model"]
        turn = agent_script.turn(protocol, body, self.agent_calls)
        whole, events = {
            "openai-chat": (agent_script.chat_whole, agent_script.chat_events),
            "anthropic-messages": (agent_script.anthropic_whole, agent_script.anthropic_events),
            "openai-responses": (agent_script.responses_whole, agent_script.responses_events),
        }[protocol]
        if not body.get("stream"):
            return web.json_response(whole(model, turn))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in events(model, turn):
            await response.write(event)
        await response.write_eof()
        return response

    async def _scripted(self, request: web.Request, body: dict[str, Any],
                        kind: str) -> web.StreamResponse:
        model = body["model"]
        if kind == "tools":
            fragments = ['{"city": "Par', 'is", "days"', ': 3}']
            deltas: list[dict[str, Any]] = [
                {"content": "Let me check."},
                {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                 "function": {"name": "get_weather", "arguments": ""}}]},
                *({"tool_calls": [{"index": 0, "function": {"arguments": f}}]}
                  for f in fragments),
            ]
            finish = "tool_calls"
            message: dict[str, Any] = {
                "role": "assistant", "content": "Let me check.",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {
                    "name": "get_weather", "arguments": "".join(fragments)}}]}
        else:
            deltas = [{"reasoning_content": "Think"}, {"reasoning_content": "ing."},
                      {"content": "Answer."}]
            finish = "stop"
            message = {"role": "assistant", "content": "Answer.",
                       "reasoning_content": "Thinking."}
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
                 "prompt_tokens_details": {"cached_tokens": 4}}
        if not body.get("stream"):
            return web.json_response({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for delta in deltas:
            await response.write(_chunk(model, delta))
        await response.write(_chunk(model, {}, finish))
        await response.write(b"data: " + orjson.dumps(
            {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
             "model": model, "choices": [], "usage": usage}) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        content = message.get("content")
        if message.get("role") != "user":
            continue
        if isinstance(content, str):
            return content
        if isinstance(content, list):  # Anthropic-style blocks
            return " ".join(b.get("text", "") for b in content if b.get("type") == "text")
    return ""


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": text, "refusal": None}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
    }


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    data = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
    return b"data: " + orjson.dumps(data) + b"\n\n"
