"""Shape checks of client request bodies, per front end, before any conversion runs.

The reference is the installed SDKs' request types (openai/types/chat/completion_create_params.py,
openai/types/responses/response_create_params.py, anthropic/types/message_create_params.py,
openai/types/embedding_create_params.py). Checks are plain Python over the parsed dict: strict
about the fields conversion reads (their types, required ids, block types), permissive about
top-level fields nobody here reads, which native providers get as they were sent. Every failure
is a 400 naming the field (`param`) and what it must be. Optional fields may be null.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from vpipe_proxy.errors import ProxyError, bad_request

# Deepest nesting of a body accepted. orjson parses 1024 levels but serialises only 254, and a
# conversion wraps client JSON (tool schemas, arguments) a few levels deeper: a body the proxy
# could parse but not send on would otherwise fail after routing.
MAX_DEPTH: Final = 128

_CHAT_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_CHAT_PARTS: Final = {"text": "text", "refusal": "refusal", "image_url": "image_url",
                      "input_audio": "input_audio", "file": "file"}
_ANTHROPIC_BLOCKS: Final = frozenset({
    "text", "image", "document", "search_result", "thinking", "redacted_thinking", "tool_use",
    "tool_result", "server_tool_use", "web_search_tool_result", "web_fetch_tool_result",
    "code_execution_tool_result", "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result", "tool_search_tool_result", "container_upload",
})
_RESPONSES_ROLES: Final = frozenset({"user", "assistant", "system", "developer"})
# Tuples, not sets: membership by ==, so an unhashable role (a list) is simply not in them.
_PLAIN_ROLES: Final = ("user", "system", "developer", "assistant")
# "system" mid-conversation: Claude Code sends it; the llmswitch field policy places it.
_ANTHROPIC_ROLES: Final = ("user", "assistant", "system")


def _fail(where: str, what: str) -> ProxyError:
    return bad_request(f"'{where}' must be {what}.", param=where)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _str(body: dict[str, Any], key: str, where: str, *, required: bool = False) -> None:
    value = body.get(key)
    if value is None:
        if required:
            raise _fail(f"{where}{key}", "a string (it is required)")
        return
    if not isinstance(value, str):
        raise _fail(f"{where}{key}", f"a string, not {_kind(value)}")


def _int(body: dict[str, Any], key: str, where: str = "") -> None:
    value = body.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise _fail(f"{where}{key}", f"an integer, not {_kind(value)}")


def _number(body: dict[str, Any], key: str) -> None:
    value = body.get(key)
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        raise _fail(key, f"a number, not {_kind(value)}")


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _fail(key, "true or false")
    return value


def _obj(body: dict[str, Any], key: str, where: str = "") -> dict[str, Any] | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise _fail(f"{where}{key}", f"an object, not {_kind(value)}")
    return value


def _list(value: Any, where: str, *, nonempty: bool = False) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(where, f"an array, not {_kind(value)}")
    if nonempty and not value:
        raise _fail(where, "a non-empty array")
    return value


def _item(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"an object, not {_kind(value)}")
    return value


def _str_or_strs(body: dict[str, Any], key: str) -> None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return
    for i, s in enumerate(_list(value, key)):
        if not isinstance(s, str):
            raise _fail(f"{key}[{i}]", f"a string, not {_kind(s)}")


def _typed(value: Any, where: str) -> tuple[dict[str, Any], str]:
    item = _item(value, where)
    kind = item.get("type")
    if not isinstance(kind, str):
        raise _fail(f"{where}.type", f"a string, not {_kind(kind)}")
    return item, kind


# orjson writes at most this many levels; wrapping a body in (this - MAX_DEPTH) arrays makes
# its own serialiser the depth check: one C pass (~20 us for a 55 kB agent body, ten times
# faster than walking the dicts in Python).
_ORJSON_DEPTH: Final = 254
_PAD: Final = _ORJSON_DEPTH - MAX_DEPTH


def _plain_text(part: Any, kind: str) -> bool:
    """The common {"type": kind, "text": "..."} part, accepted without building its path."""
    return type(part) is dict and part.get("type") == kind and type(part.get("text")) is str


def _plain_function_tool(tool: Any) -> bool:
    if type(tool) is not dict or tool.get("type") != "function":
        return False
    function = tool.get("function")
    return (type(function) is dict and type(function.get("name")) is str
            and type(function.get("parameters", {})) is dict)


def check_depth(value: Any) -> None:
    """400 when `value` nests deeper than MAX_DEPTH arrays/objects."""
    for _ in range(_PAD):
        value = [value]
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        raise bad_request(f"The request body nests deeper than {MAX_DEPTH} levels of arrays "
                          "and objects; flatten it.", code="nesting_too_deep") from None


def may_be_too_deep(raw: bytes) -> bool:
    """Cheap pre-test (C-speed counts): a body with fewer brackets than MAX_DEPTH cannot be
    deeper."""
    return raw.count(b"{") + raw.count(b"[") > MAX_DEPTH


# -- OpenAI Chat Completions --------------------------------------------------------------------

def _chat_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    for i, tool in enumerate(_list(tools, "tools")):
        if _plain_function_tool(tool):
            continue
        where = f"tools[{i}]"
        tool, kind = _typed(tool, where)
        if kind == "function":
            function = _obj(tool, "function", where + ".")
            if function is None:
                raise _fail(f"{where}.function", "an object with a name")
            _str(function, "name", f"{where}.function.", required=True)
            _obj(function, "parameters", f"{where}.function.")
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, (str, dict)):
        raise _fail("tool_choice", "a string or an object")


def _chat_message(message: Any, where: str) -> None:
    message = _item(message, where)
    role = message.get("role")
    if not isinstance(role, str) or role not in _CHAT_ROLES:
        raise _fail(f"{where}.role", "one of " + ", ".join(sorted(_CHAT_ROLES)))
    content = message.get("content")
    if content is None:
        if role not in ("assistant", "function"):
            raise _fail(f"{where}.content", "a string or an array of content parts")
    elif not isinstance(content, str):
        for j, part in enumerate(_list(content, f"{where}.content")):
            if _plain_text(part, "text"):
                continue
            at = f"{where}.content[{j}]"
            part, kind = _typed(part, at)
            field = _CHAT_PARTS.get(kind)
            if field is None:
                raise _fail(f"{at}.type", "one of " + ", ".join(sorted(_CHAT_PARTS)))
            if field in ("text", "refusal"):
                _str(part, field, at + ".", required=True)
            elif not isinstance(part.get(field), dict):
                raise _fail(f"{at}.{field}", "an object")
    _str(message, "name", where + ".")
    if role == "tool":
        _str(message, "tool_call_id", where + ".", required=True)
    calls = message.get("tool_calls")
    if calls is not None:
        for j, call in enumerate(_list(calls, f"{where}.tool_calls")):
            at = f"{where}.tool_calls[{j}]"
            call = _item(call, at)
            _str(call, "id", at + ".", required=True)
            function = _obj(call, "function", at + ".")
            if function is not None:
                _str(function, "name", f"{at}.function.", required=True)
                _str(function, "arguments", f"{at}.function.", required=True)


def check_chat(body: dict[str, Any]) -> bool:
    """OpenAI Chat Completions; returns whether the client asked for a stream."""
    messages = body.get("messages")
    if messages is None:
        raise _fail("messages", "a non-empty array of {role, content} objects (it is required)")
    for i, message in enumerate(_list(messages, "messages", nonempty=True)):
        if (type(message) is dict and len(message) == 2 and type(message.get("content")) is str
                and message.get("role") in _PLAIN_ROLES):
            continue  # the common {role, content: "text"}: nothing more to look at
        _chat_message(message, f"messages[{i}]")
    for key in ("max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs"):
        _int(body, key)
    for key in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
        _number(body, key)
    _str_or_strs(body, "stop")
    _obj(body, "stream_options")
    _obj(body, "response_format")
    _chat_tools(body)
    return _bool(body, "stream")


# -- OpenAI Responses ---------------------------------------------------------------------------

def _responses_item(item: Any, where: str) -> None:
    item = _item(item, where)
    kind = item.get("type")
    if kind is None and "role" in item:
        kind = "message"
    if not isinstance(kind, str):
        raise _fail(f"{where}.type", f"a string, not {_kind(kind)}")
    if kind == "message":
        role = item.get("role")
        if not isinstance(role, str) or role not in _RESPONSES_ROLES:
            raise _fail(f"{where}.role", "one of " + ", ".join(sorted(_RESPONSES_ROLES)))
        content = item.get("content")
        if not isinstance(content, str):
            for j, part in enumerate(_list(content, f"{where}.content")):
                if _plain_text(part, "input_text") or _plain_text(part, "output_text"):
                    continue
                at = f"{where}.content[{j}]"
                part, part_kind = _typed(part, at)
                if part_kind in ("input_text", "output_text"):
                    _str(part, "text", at + ".", required=True)
                elif part_kind == "refusal":
                    _str(part, "refusal", at + ".", required=True)
    elif kind == "function_call":
        for key in ("call_id", "name", "arguments"):
            _str(item, key, where + ".", required=True)
    elif kind == "function_call_output":
        _str(item, "call_id", where + ".", required=True)
        output = item.get("output")
        if not isinstance(output, (str, list)):
            raise _fail(f"{where}.output", "a string or an array of content parts")
    elif kind == "item_reference":
        _str(item, "id", where + ".", required=True)


def check_responses(body: dict[str, Any]) -> bool:
    """OpenAI Responses; returns whether the client asked for a stream."""
    value = body.get("input")
    if isinstance(value, str):
        if not value:
            raise _fail("input", "a non-empty string or array of input items")
    else:
        for i, item in enumerate(_list(value, "input", nonempty=True)):
            _responses_item(item, f"input[{i}]")
    _str(body, "instructions", "")
    _str(body, "previous_response_id", "")
    conversation = body.get("conversation")
    if conversation is not None and not isinstance(conversation, (str, dict)):
        raise _fail("conversation", "a string or an object")
    _int(body, "max_output_tokens")
    for key in ("temperature", "top_p"):
        _number(body, key)
    tools = body.get("tools")
    if tools is not None:
        for i, tool in enumerate(_list(tools, "tools")):
            tool, kind = _typed(tool, f"tools[{i}]")
            if kind == "function":
                _str(tool, "name", f"tools[{i}].", required=True)
                _obj(tool, "parameters", f"tools[{i}].")
    _obj(body, "text")
    _obj(body, "reasoning")
    return _bool(body, "stream")


# -- Anthropic Messages -------------------------------------------------------------------------

def _anthropic_blocks(content: Any, where: str) -> None:
    for j, block in enumerate(_list(content, where)):
        if _plain_text(block, "text"):
            continue
        at = f"{where}[{j}]"
        block, kind = _typed(block, at)
        if kind not in _ANTHROPIC_BLOCKS:
            raise _fail(f"{at}.type", "a known content block type (" + ", ".join(
                sorted(_ANTHROPIC_BLOCKS)) + ")")
        if kind == "text":
            _str(block, "text", at + ".", required=True)
        elif kind in ("image", "document"):
            if not isinstance(block.get("source"), dict):
                raise _fail(f"{at}.source", "an object")
        elif kind == "tool_use":
            _str(block, "id", at + ".", required=True)
            _str(block, "name", at + ".", required=True)
            if not isinstance(block.get("input"), dict):
                raise _fail(f"{at}.input", "an object")
        elif kind == "tool_result":
            _str(block, "tool_use_id", at + ".", required=True)
            inner = block.get("content")
            if inner is not None and not isinstance(inner, str):
                _anthropic_blocks(inner, f"{at}.content")
        elif kind == "thinking":
            _str(block, "thinking", at + ".", required=True)
            _str(block, "signature", at + ".")


def _anthropic_messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise _fail("messages", "a non-empty array of {role, content} objects (it is required)")
    for i, message in enumerate(_list(messages, "messages", nonempty=True)):
        if (type(message) is dict and len(message) == 2 and type(message.get("content")) is str
                and message.get("role") in _ANTHROPIC_ROLES):
            continue
        where = f"messages[{i}]"
        message = _item(message, where)
        if message.get("role") not in _ANTHROPIC_ROLES:
            raise _fail(f"{where}.role", "user, assistant or system")
        content = message.get("content")
        if not isinstance(content, str):
            _anthropic_blocks(content, f"{where}.content")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        _anthropic_blocks(system, "system")
    tools = body.get("tools")
    if tools is not None:
        for i, tool in enumerate(_list(tools, "tools")):
            if (type(tool) is dict and type(tool.get("name")) is str
                    and type(tool.get("input_schema", {})) is dict):
                continue
            tool = _item(tool, f"tools[{i}]")
            _str(tool, "name", f"tools[{i}].", required=True)
            _obj(tool, "input_schema", f"tools[{i}].")
    _obj(body, "tool_choice")
    _obj(body, "thinking")
    _obj(body, "metadata")


def check_messages(body: dict[str, Any]) -> bool:
    """Anthropic Messages; returns whether the client asked for a stream."""
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise bad_request("'max_tokens' is required and must be a positive integer.",
                          param="max_tokens")
    _anthropic_messages(body)
    _str_or_strs(body, "stop_sequences")
    for key in ("temperature", "top_p"):
        _number(body, key)
    _int(body, "top_k")
    return _bool(body, "stream")


def check_count_tokens(body: dict[str, Any]) -> bool:
    """Anthropic count_tokens: the Messages body without max_tokens; never streamed."""
    _anthropic_messages(body)
    return False


# -- OpenAI Embeddings --------------------------------------------------------------------------

def check_embeddings(body: dict[str, Any]) -> bool:
    """OpenAI Embeddings: a string, strings, token ids or arrays of token ids; never streamed."""
    value = body.get("input")
    if value is None:
        raise _fail("input", "a string or an array of strings to embed (it is required)")
    if not isinstance(value, str):
        for i, item in enumerate(_list(value, "input", nonempty=True)):
            if isinstance(item, (str, int)) and not isinstance(item, bool):
                continue
            if isinstance(item, list) and all(
                    isinstance(t, int) and not isinstance(t, bool) for t in item):
                continue
            raise _fail(f"input[{i}]", "a string, a token id or an array of token ids")
    _str(body, "encoding_format", "")
    _int(body, "dimensions")
    return False
