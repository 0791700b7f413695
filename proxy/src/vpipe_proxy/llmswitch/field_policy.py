"""What each protocol conversion does with every request field, block type and tool type: data.

One table per conversion pair (client protocol -> provider protocol). Every field the installed
`openai` / `anthropic` packages define for the client's create request is in its table (a unit
test checks that against the packages' TypedDicts), and so are the fields coding agents send
beyond them. Each entry is one of:

- mapped: converted to the provider's equivalent (the note says to what);
- dropped: a hint the provider has no use for (a cache key, `cache_control`, a beta-only context
  edit of the client's own history, a server-side tool the provider cannot run). Left out of the
  provider request, named in the `x-vpipe-dropped` response header and counted in
  `vpipe_dropped_fields_total`. A Pipeline with `hints: refuse` turns these into refusals;
- refused: a 400 in the client's protocol naming the field, with the note saying what to do.

A field no table knows is refused: new API fields are never dropped silently. The hot path
costs one dict lookup per top-level field present plus a walk of the few nested hint paths;
`docs/agents/*.md` tables are generated from these tables (tests/unit/test_field_policy_docs.py
keeps them in step).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from vpipe_proxy.errors import ProxyError, bad_request

MAPPED: Final = "mapped"
DROPPED: Final = "dropped"
REFUSED: Final = "refused"
UNSUPPORTED_FIELD: Final = "unsupported_field"
DROPPED_HEADER: Final = "x-vpipe-dropped"


@dataclass(frozen=True, slots=True)
class Rule:
    """What happens to one field or type: MAPPED, DROPPED or REFUSED, and how or why."""

    action: str
    note: str


@dataclass(frozen=True)
class PairPolicy:
    """The policy of one conversion step."""

    client: str
    provider: str
    provider_label: str  # how error messages name the provider side
    fields: Mapping[str, Rule]  # top-level request fields
    nested: Mapping[str, Rule]  # dotted paths below them; `[]` walks every list item
    blocks: Mapping[str, Rule]  # message roles, content blocks, input items
    tools: Mapping[str, Rule]  # tool types (Anthropic's dated types by their base name)
    fallback: str  # what to do instead, said in every refusal


def _table(rows: Mapping[str, tuple[str, str]]) -> dict[str, Rule]:
    return {name: Rule(action, note) for name, (action, note) in rows.items()}


M, D, R = MAPPED, DROPPED, REFUSED
_NO_STATE = "vpipe keeps no conversation state; send the whole conversation each turn"
_CACHE = "prompt-caching hint; the provider caches on its own or not at all"

ANTHROPIC_TO_CHAT: Final = PairPolicy(
    "anthropic-messages", "openai-chat", "OpenAI-compatible",
    fields=_table({
        "model": (M, "model (then the provider's modelMap)"),
        "messages": (M, "messages; see the block table"),
        "max_tokens": (M, "max_tokens (a compatibility clamp rule can cap it)"),
        "system": (M, "a leading system message; text blocks joined by blank lines"),
        "stop_sequences": (M, "stop"),
        "stream": (M, "stream, with stream_options.include_usage so usage is reported"),
        "temperature": (M, "temperature"),
        "top_p": (M, "top_p"),
        "top_k": (R, "OpenAI-compatible APIs have no top_k; remove it"),
        "metadata": (M, "metadata.user_id becomes user"),
        "tools": (M, "custom tools become function tools; see the tool table"),
        "tool_choice": (M, "auto/any/none/tool become auto/required/none/function; "
                           "disable_parallel_tool_use becomes parallel_tool_calls: false"),
        "thinking": (M, "enabled: budget_tokens becomes reasoning_effort (<4096 low, <16384 "
                        "medium, else high); adaptive: effort from output_config; disabled: none"),
        "output_config": (M, "effort becomes reasoning_effort (same level names); format "
                             "(json_schema) becomes response_format"),
        "cache_control": (D, _CACHE),
        "context_management": (D, "edits that trim the agent's own earlier thinking and tool "
                                  "results at Anthropic; the provider gets the conversation as "
                                  "sent"),
        "compaction": (D, "server-side compaction at Anthropic; the provider gets the "
                          "conversation as sent"),
        "diagnostics": (D, "asks Anthropic for cache diagnostics"),
        "service_tier": (D, "Anthropic capacity tier; the provider serves its default tier"),
        "speed": (D, "Anthropic fast-mode preference"),
        "betas": (D, "beta flags (the anthropic-beta header) only Anthropic reads"),
        "billing_policy": (D, "Anthropic account billing"),
        "fallback_credit_token": (D, "Anthropic account billing"),
        "user_profile_id": (D, "Anthropic account scoping; the provider bills the pipeline's "
                               "key"),
        "workspace_id": (D, "Anthropic account scoping; the provider bills the pipeline's key"),
        "inference_geo": (R, "a data-residency requirement the provider cannot promise; route "
                             "this model to Anthropic"),
        "container": (R, "code-execution containers exist only at Anthropic"),
        "mcp_servers": (R, "MCP connectors run only at Anthropic; run the MCP server in the "
                           "client"),
        "fallbacks": (R, "model fallbacks at Anthropic; vpipe falls back only where a Route "
                         "says so"),
        "thread": (R, _NO_STATE),
    }),
    nested=_table({
        "system[].cache_control": (D, _CACHE),
        "messages[].content[].cache_control": (D, _CACHE),
        "tools[].cache_control": (D, _CACHE),
        "tools[].defer_loading": (D, "Anthropic's tool search loads deferred tools on demand; "
                                     "the provider gets every tool up front"),
        "thinking.display": (D, "how Anthropic shows thinking; the provider's reasoning text "
                                "comes back as thinking blocks"),
    }),
    blocks=_table({
        "role: user": (M, "user message; tool_result blocks become tool messages before it"),
        "role: assistant": (M, "assistant message; tool_use blocks become tool_calls"),
        "role: system": (M, "a system message at the same place in the conversation"),
        "text": (M, "text"),
        "image": (M, "image_url part (base64 as a data: URL)"),
        "tool_use": (M, "tool_calls entry, input as JSON arguments"),
        "tool_result": (M, "tool message (text only; is_error prefixes [tool error])"),
        "thinking": (M, "earlier turns' thinking is not sent (Anthropic ignores it as input "
                        "too)"),
        "redacted_thinking": (M, "not sent, as thinking"),
        "document": (R, "OpenAI chat has no document input; send the text"),
        "search_result": (R, "no equivalent"),
        "server_tool_use": (R, "results of Anthropic's server tools cannot be replayed"),
        "web_search_tool_result": (R, "as server_tool_use"),
        "web_fetch_tool_result": (R, "as server_tool_use"),
        "code_execution_tool_result": (R, "as server_tool_use"),
        "bash_code_execution_tool_result": (R, "as server_tool_use"),
        "text_editor_code_execution_tool_result": (R, "as server_tool_use"),
        "tool_search_tool_result": (R, "as server_tool_use"),
        "container_upload": (R, "containers exist only at Anthropic"),
    }),
    tools=_table({
        "custom": (M, "function tool (name, description, input_schema as parameters)"),
        **{kind: (D, "runs only at Anthropic (server tool or Anthropic-defined schema); left "
                     "out, the model answers without it")
           for kind in ("web_search", "web_fetch", "code_execution", "bash", "text_editor",
                        "computer", "computer_toolset", "browser_toolset", "memory",
                        "tool_search_tool_bm25", "tool_search_tool_regex", "advisor",
                        "mcp_toolset")},
    }),
    fallback="or route this model to an Anthropic provider",
)

CHAT_TO_ANTHROPIC: Final = PairPolicy(
    "openai-chat", "anthropic-messages", "Anthropic",
    fields=_table({
        "model": (M, "model (then the provider's modelMap)"),
        "messages": (M, "messages; see the block table"),
        "max_completion_tokens": (M, "max_tokens"),
        "max_tokens": (M, "max_tokens (default 4096 when neither is set: Anthropic requires "
                          "it)"),
        "temperature": (M, "temperature; above 1 is refused (Anthropic's maximum)"),
        "top_p": (M, "top_p"),
        "stop": (M, "stop_sequences"),
        "stream": (M, "stream"),
        "stream_options": (M, "include_usage: a usage chunk before [DONE]"),
        "user": (M, "metadata.user_id"),
        "safety_identifier": (M, "metadata.user_id (when user is not set)"),
        "tools": (M, "function tools become custom tools; see the tool table"),
        "tool_choice": (M, "auto/required/none/function become auto/any/none/tool"),
        "parallel_tool_calls": (M, "false becomes tool_choice.disable_parallel_tool_use"),
        "reasoning_effort": (M, "thinking.budget_tokens (minimal 1024, low 2048, medium 8192, "
                                "high 24576, xhigh 32768, max 65536; must stay below "
                                "max_tokens); none: no thinking"),
        "n": (M, "only 1 (Anthropic answers one choice)"),
        "response_format": (M, "only text; use a tool for structured output"),
        "presence_penalty": (M, "only 0 (Anthropic has no penalties)"),
        "frequency_penalty": (M, "only 0"),
        "logprobs": (M, "only false (Anthropic returns no log probabilities)"),
        "prompt_cache_key": (D, _CACHE),
        "prompt_cache_retention": (D, _CACHE),
        "prompt_cache_options": (D, _CACHE),
        "store": (D, "OpenAI's stored completions; nothing is stored"),
        "metadata": (D, "OpenAI's stored-completion tags"),
        "service_tier": (D, "OpenAI capacity tier"),
        "prediction": (D, "predicted output only speeds OpenAI up; the answer is the same"),
        "seed": (D, "best-effort determinism; Anthropic has no seed"),
        "verbosity": (D, "a length preference; say it in the prompt if it matters"),
        "modalities": (M, "only [\"text\"]"),
        "audio": (R, "Anthropic has no audio output"),
        "logit_bias": (R, "Anthropic has no logit bias"),
        "top_logprobs": (R, "Anthropic returns no log probabilities"),
        "functions": (R, "deprecated; send tools"),
        "function_call": (R, "deprecated; send tool_choice"),
        "web_search_options": (R, "OpenAI's built-in web search; give the model a web-search "
                                  "function tool"),
        "moderation": (R, "OpenAI's moderation policy cannot be enforced at Anthropic"),
    }),
    nested=_table({}),
    blocks=_table({
        "role: system": (M, "leading system/developer messages become system; later ones a "
                            "system message in place"),
        "role: developer": (M, "as system"),
        "role: user": (M, "user turn (neighbouring user turns merge)"),
        "role: assistant": (M, "assistant turn; tool_calls become tool_use blocks"),
        "role: tool": (M, "tool_result block in a user turn"),
        "role: function": (R, "deprecated; send tool messages"),
        "text": (M, "text block"),
        "image_url": (M, "image block (data: URLs as base64, others as url)"),
        "input_audio": (R, "Anthropic has no audio input"),
        "file": (R, "send the file's text, or route to an OpenAI provider"),
    }),
    tools=_table({
        "function": (M, "custom tool (parameters as input_schema)"),
        "custom": (R, "free-form (grammar) tools have no Anthropic form; use a function tool"),
    }),
    fallback="or route this model to an OpenAI-compatible provider",
)

RESPONSES_TO_CHAT: Final = PairPolicy(
    "openai-responses", "openai-chat", "chat-completions",
    fields=_table({
        "model": (M, "model (then the provider's modelMap)"),
        "input": (M, "messages; see the item table"),
        "instructions": (M, "a leading system message"),
        "max_output_tokens": (M, "max_tokens"),
        "temperature": (M, "temperature"),
        "top_p": (M, "top_p"),
        "tools": (M, "function tools; see the tool table"),
        "tool_choice": (M, "auto/required/none, or a function by name"),
        "parallel_tool_calls": (M, "parallel_tool_calls"),
        "stream": (M, "stream, with stream_options.include_usage; events rebuilt as Responses "
                      "events"),
        "user": (M, "user"),
        "text": (M, "format becomes response_format; verbosity becomes verbosity"),
        "reasoning": (M, "effort becomes reasoning_effort"),
        "store": (M, "false (or absent) only: vpipe stores no responses"),
        "prompt_cache_key": (M, "prompt_cache_key"),
        "prompt_cache_retention": (M, "prompt_cache_retention"),
        "prompt_cache_options": (M, "prompt_cache_options"),
        "safety_identifier": (M, "safety_identifier"),
        "service_tier": (M, "service_tier"),
        "include": (D, "extra output (e.g. reasoning.encrypted_content) chat providers do not "
                       "return; none comes back"),
        "metadata": (D, "tags on OpenAI's stored response; nothing is stored"),
        "client_metadata": (D, "Codex's per-turn tags; no provider reads them"),
        "stream_options": (D, "include_obfuscation pads OpenAI's own stream events"),
        "truncation": (D, "the provider answers or fails on the context as sent"),
        "max_tool_calls": (D, "limits OpenAI's built-in tools, which are not sent"),
        "context_management": (D, "OpenAI-side compaction; the provider gets the conversation "
                                  "as sent"),
        "previous_response_id": (R, _NO_STATE + " in 'input'"),
        "conversation": (R, _NO_STATE + " in 'input'"),
        "background": (R, "vpipe answers in the foreground; remove background"),
        "background_options": (R, "as background"),
        "prompt": (R, "stored prompt templates live at OpenAI; send the prompt's text"),
        "top_logprobs": (R, "log probabilities are not converted"),
        "moderation": (R, "OpenAI's moderation policy cannot be enforced by this provider"),
        "image": (R, "image-generation settings apply only at OpenAI"),
        "access_programs": (R, "OpenAI account programs"),
    }),
    nested=_table({
        "reasoning.summary": (D, "chat providers return reasoning text as it is, or none; it "
                                 "comes back as the summary"),
        "reasoning.generate_summary": (D, "as reasoning.summary"),
    }),
    blocks=_table({
        "role: user": (M, "user message"),
        "role: assistant": (M, "assistant message"),
        "role: system": (M, "system message in place"),
        "role: developer": (M, "system message in place (most chat providers know no "
                               "developer role)"),
        "message": (M, "a message of its role"),
        "input_text": (M, "text"),
        "output_text": (M, "text"),
        "input_image": (M, "image_url part"),
        "input_file": (R, "chat providers take no files; send the text"),
        "function_call": (M, "assistant tool_calls entry"),
        "function_call_output": (M, "tool message"),
        "reasoning": (M, "earlier reasoning is not sent (chat providers take none)"),
        "item_reference": (R, _NO_STATE),
        "custom_tool_call": (R, "custom tools are not converted"),
        "custom_tool_call_output": (R, "custom tools are not converted"),
        **{kind: (R, "calls of OpenAI's built-in tools cannot be replayed to this provider")
           for kind in ("file_search_call", "computer_call", "computer_call_output",
                        "web_search_call", "tool_search_call", "tool_search_output",
                        "image_generation_call", "code_interpreter_call", "local_shell_call",
                        "local_shell_call_output", "shell_call", "shell_call_output",
                        "apply_patch_call", "apply_patch_call_output", "mcp_list_tools",
                        "mcp_approval_request", "mcp_approval_response", "mcp_call", "program",
                        "program_output")},
        **{kind: (R, "OpenAI-side context items; " + _NO_STATE)
           for kind in ("compaction", "compaction_trigger", "additional_tools",
                        "configuration_update")},
    }),
    tools=_table({
        "function": (M, "function tool (strict kept)"),
        "custom": (R, "free-form (grammar) tools are not converted; use a function tool"),
        "namespace": (D, "a group of tools OpenAI loads on demand; left out, the model "
                         "answers without them"),
        **{kind: (D, "runs only on OpenAI's servers; left out, the model answers without it")
           for kind in ("web_search", "web_search_2025_08_26", "web_search_preview",
                        "web_search_preview_2025_03_11", "file_search", "code_interpreter",
                        "image_generation", "computer", "computer_use_preview", "mcp",
                        "tool_search", "programmatic_tool_calling", "local_shell", "shell",
                        "apply_patch")},
    }),
    fallback="or route this model to an OpenAI Responses provider",
)

CHAT_TO_RESPONSES: Final = PairPolicy(
    "openai-chat", "openai-responses", "Responses",
    fields=_table({
        "model": (M, "model (then the provider's modelMap)"),
        "messages": (M, "input items; see the block table"),
        "max_completion_tokens": (M, "max_output_tokens"),
        "max_tokens": (M, "max_output_tokens"),
        "temperature": (M, "temperature"),
        "top_p": (M, "top_p"),
        "stream": (M, "stream; events rebuilt as chat chunks"),
        "stream_options": (M, "include_usage: a usage chunk before [DONE]"),
        "user": (M, "user"),
        "tools": (M, "function tools; see the tool table"),
        "tool_choice": (M, "auto/required/none, or a function by name"),
        "parallel_tool_calls": (M, "parallel_tool_calls"),
        "reasoning_effort": (M, "reasoning.effort"),
        "response_format": (M, "text.format"),
        "verbosity": (M, "text.verbosity"),
        "store": (M, "store"),
        "metadata": (M, "metadata"),
        "prompt_cache_key": (M, "prompt_cache_key"),
        "prompt_cache_retention": (M, "prompt_cache_retention"),
        "prompt_cache_options": (M, "prompt_cache_options"),
        "safety_identifier": (M, "safety_identifier"),
        "service_tier": (M, "service_tier"),
        "n": (M, "only 1"),
        "stop": (M, "only unset: the Responses API has no stop sequences"),
        "logprobs": (M, "only false"),
        "presence_penalty": (M, "only 0"),
        "frequency_penalty": (M, "only 0"),
        "seed": (D, "best-effort determinism; the Responses API has no seed"),
        "prediction": (D, "predicted output only speeds Chat Completions up"),
        "modalities": (M, "only [\"text\"]"),
        "audio": (R, "audio output is not converted"),
        "logit_bias": (R, "the Responses API has no logit bias"),
        "top_logprobs": (R, "log probabilities are not converted"),
        "functions": (R, "deprecated; send tools"),
        "function_call": (R, "deprecated; send tool_choice"),
        "web_search_options": (R, "not converted; route to an OpenAI chat provider"),
        "moderation": (R, "not converted"),
    }),
    nested=_table({}),
    blocks=_table({
        "role: system": (M, "system message item"),
        "role: developer": (M, "developer message item"),
        "role: user": (M, "user message item"),
        "role: assistant": (M, "assistant message item; tool_calls become function_call items"),
        "role: tool": (M, "function_call_output item"),
        "role: function": (R, "deprecated; send tool messages"),
        "text": (M, "input_text (output_text for the assistant)"),
        "image_url": (M, "input_image"),
        "input_audio": (R, "not converted"),
        "file": (R, "not converted"),
    }),
    tools=_table({
        "function": (M, "function tool"),
        "custom": (R, "not converted; use a function tool"),
    }),
    fallback="or route this model to an OpenAI chat provider",
)

POLICIES: Final = (ANTHROPIC_TO_CHAT, CHAT_TO_ANTHROPIC, RESPONSES_TO_CHAT, CHAT_TO_RESPONSES)
_DATED = re.compile(r"_\d{8}$")
_NESTED_PARTS: Final = {path: tuple(path.split(".")) for p in POLICIES for path in p.nested}


def tool_kind(tool: Any) -> str:
    """A tool's type for the tool table; Anthropic's dated types by their base name."""
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind is None:
        return "custom"
    return _DATED.sub("", str(kind))


def _present(body: dict[str, Any], parts: tuple[str, ...]) -> bool:
    """Whether a nested path (`a[].b.c`: `[]` walks every item of list a) holds a key.

    Loops over a frontier rather than recursing: this runs on every converted request."""
    frontier: list[Any] = [body]
    for part in parts[:-1]:
        following: list[Any] = []
        if part.endswith("[]"):
            key = part[:-2]
            for node in frontier:
                items = node.get(key) if isinstance(node, dict) else None
                if isinstance(items, list):
                    following += items
        else:
            following = [node[part] for node in frontier
                         if isinstance(node, dict) and part in node]
        frontier = following
    last = parts[-1]
    return any(isinstance(node, dict) and last in node for node in frontier)


class Screen:
    """One request's pass through a pair's policy: refuses what it must, notes what it drops.

    `strict` is a Pipeline's `hints: refuse`: a dropped entry becomes a refusal.
    """

    __slots__ = ("dropped", "pipeline", "policy", "strict")

    def __init__(self, policy: PairPolicy, *, strict: bool = False, pipeline: str = "") -> None:
        self.policy = policy
        self.strict = strict
        self.pipeline = pipeline
        self.dropped: list[str] = []

    def refuse(self, field: str, why: str) -> ProxyError:
        return bad_request(f"'{field}' cannot be sent to this {self.policy.provider_label} "
                           f"provider: {why}. Remove it, {self.policy.fallback}.",
                           param=field, code=UNSUPPORTED_FIELD)

    def drop(self, name: str, rule: Rule) -> None:
        """Leave `name` out, or refuse it under `hints: refuse`."""
        if self.strict:
            raise bad_request(
                f"'{name}' is a hint the {self.policy.provider_label} provider cannot use "
                f"({rule.note}); pipeline '{self.pipeline}' refuses hints (spec.hints: refuse). "
                "Remove it, or set hints: drop on the Pipeline.", param=name,
                code=UNSUPPORTED_FIELD)
        if name not in self.dropped:
            self.dropped.append(name)

    def fields(self, body: dict[str, Any]) -> None:
        """Check the top-level fields and the nested hint paths of a request body."""
        table = self.policy.fields
        for key, value in body.items():
            rule = table.get(key)
            if rule is None:
                raise self.refuse(key, f"vpipe does not know this {self.policy.client} field, "
                                  "so it cannot say what the provider would do with it")
            if value is None or rule.action == MAPPED:
                continue  # null is how SDKs say "not set"
            if rule.action == DROPPED:
                self.drop(key, rule)
            else:
                raise self.refuse(key, rule.note)
        for path, rule in self.policy.nested.items():
            parts = _NESTED_PARTS[path]
            if parts[0].removesuffix("[]") in body and _present(body, parts):
                self.drop(path, rule)

    def keep_tool(self, tool: Any, at: str) -> bool:
        """Whether to convert this tool (False: dropped); raises when it is refused."""
        kind = tool_kind(tool)
        rule = self.policy.tools.get(kind)
        if rule is None:
            raise self.refuse(at, f"tool type {kind!r} is not one vpipe converts")
        if rule.action == REFUSED:
            raise self.refuse(at, f"tool type {kind!r}: {rule.note}")
        if rule.action == DROPPED:
            self.drop(f"tools[{kind}]", rule)
            return False
        return True

    def header(self) -> str:
        return ", ".join(self.dropped)
