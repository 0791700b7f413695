"""Compatibility presets: declarative rewrite rules for providers' departures from the OpenAI API.

A `compatibility` module sits before an openai-chat provider. Its rules change the request on
the way out (rename, drop, default, clamp fields) and the reply on the way back (map finish
reasons, move reasoning text to `reasoning_content`), streams included. A preset is a named
list of rules from this library; a Pipeline may add its own. Rendering expands presets, so the
proxy only ever sees explicit rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from vpipe_api.resources import CompatibilitySpec, CompatRule


def _rules(*rules: Mapping[str, object]) -> tuple[CompatRule, ...]:
    return tuple(CompatRule.model_validate(r) for r in rules)


_MAX_TOKENS = {"op": "rename", "field": "max_completion_tokens", "to": "max_tokens"}
_REASONING = {"op": "moveReasoning", "field": "reasoning", "to": "reasoning_content"}

# Every rule each preset applies; README's compatibility table is written from this.
PRESETS: Final[dict[str, tuple[CompatRule, ...]]] = {
    # DeepSeek reads max_tokens, rejects logprobs on the reasoner, clamps temperature to [0, 2].
    "deepseek": _rules(_MAX_TOKENS, {"op": "clamp", "field": "temperature", "min": 0, "max": 2}),
    # GLM requires temperature and top_p in [0, 1] and reads max_tokens.
    "glm": _rules(_MAX_TOKENS, {"op": "clamp", "field": "temperature", "min": 0, "max": 1},
                  {"op": "clamp", "field": "top_p", "min": 0, "max": 1}),
    # DashScope compatible mode reads max_tokens; temperature must stay below 2.
    "qwen": _rules(_MAX_TOKENS, {"op": "clamp", "field": "temperature", "min": 0, "max": 1.99}),
    # Local servers: max_tokens; reasoning models put their thinking under `reasoning`.
    "lmstudio": _rules(_MAX_TOKENS, _REASONING),
    "ollama": _rules(_MAX_TOKENS, _REASONING),
    "vllm": _rules(_REASONING),
    # Azure OpenAI has no `store` parameter on chat completions.
    "azure-openai": _rules({"op": "drop", "field": "store"}),
}


def expand(spec: CompatibilitySpec) -> list[CompatRule] | str:
    """The explicit rule list, or a message saying why the preset is unknown."""
    rules: list[CompatRule] = []
    if spec.preset is not None:
        preset = PRESETS.get(spec.preset)
        if preset is None:
            return (f"unknown preset '{spec.preset}'; known presets: "
                    + ", ".join(sorted(PRESETS)))
        rules += preset
    rules += spec.rules
    if not rules:
        return "give a preset or at least one rule"
    return rules
