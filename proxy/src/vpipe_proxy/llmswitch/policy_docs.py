"""The field policy tables as Markdown, for docs/agents/*.md.

The pages hold each table between marker comments; `hack/update-agent-docs.sh` rewrites them
from `field_policy`, and tests/unit/test_field_policy.py fails when a page differs, so the docs
say exactly what the code does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from vpipe_proxy.llmswitch.field_policy import POLICIES, PairPolicy, Rule

_SECTIONS = (("fields", "Request field"), ("nested", "Nested field"),
             ("blocks", "Role, block or item"), ("tools", "Tool type"))
MARKER = re.compile(r"<!-- BEGIN field-policy (\S+) -->\n.*?<!-- END field-policy \1 -->",
                    re.DOTALL)


def pair_name(policy: PairPolicy) -> str:
    return f"{policy.client}->{policy.provider}"


def _rows(title: str, table: Mapping[str, Rule]) -> list[str]:
    lines = [f"| {title} | what happens | mapping, or why |", "|---|---|---|"]
    order = {"mapped": 0, "dropped": 1, "refused": 2}
    for name, rule in sorted(table.items(), key=lambda kv: (order[kv[1].action], kv[0])):
        lines.append(f"| `{name}` | {rule.action} | {rule.note.replace('|', '/')} |")
    return lines


def markdown(policy: PairPolicy) -> str:
    """One pair's tables: fields, nested hints, blocks, tools."""
    out = [f"<!-- BEGIN field-policy {pair_name(policy)} -->",
           f"**{policy.client} client → {policy.provider} provider** (generated from "
           "`vpipe_proxy/llmswitch/field_policy.py`; do not edit by hand)", ""]
    for attribute, title in _SECTIONS:
        table: Mapping[str, Rule] = getattr(policy, attribute)
        if table:
            out += [*_rows(title, table), ""]
    out.append(f"<!-- END field-policy {pair_name(policy)} -->")
    return "\n".join(out)


def refresh(text: str) -> str:
    """`text` with every marked table replaced by the current one; unknown pairs raise."""
    policies = {pair_name(p): p for p in POLICIES}

    def table(match: re.Match[str]) -> str:
        policy = policies.get(match.group(1))
        if policy is None:
            raise KeyError(f"no field policy for pair {match.group(1)!r}; known: "
                           + ", ".join(policies))
        return markdown(policy)

    return MARKER.sub(table, text)
