"""The JSON tool-call protocol between an LLM agent and its model.

Small models follow a simple protocol more reliably than a rich one, so there is exactly one
rule: to act, the model replies with ONE JSON object and nothing else —

    {"tool": "calculator", "arguments": {"expression": "2 * (3 + 4)"}}   call a tool
    {"agent": "orders", "message": "Where is order 42?"}                 ask another agent
    {"answer": "It ships tomorrow."}                                     the final answer

— and any reply that is not JSON at all is taken as the final answer, as it stands. A reply
that tries to be JSON and fails (a brace or a ```json fence with broken content, an object
with none of the three keys, arguments that are not an object) is ``Malformed``: the agent
tells the model what was wrong and asks once more, then gives up with a clear error.
``protocol_prompt`` writes the instruction appended to the agent's system prompt.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec


class ToolCall(msgspec.Struct, tag=True, frozen=True):
    tool: str
    arguments: dict[str, Any]


class Delegate(msgspec.Struct, tag=True, frozen=True):
    agent: str
    message: str


class FinalAnswer(msgspec.Struct, tag=True, frozen=True):
    text: str


class Malformed(msgspec.Struct, tag=True, frozen=True):
    reason: str  # said back to the model in the retry


Step = ToolCall | Delegate | FinalAnswer | Malformed
"""One model reply, classified: tagged Structs that the LLM agent dispatches with ``match``."""

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def protocol_prompt(tools: dict[str, str], agents: list[str]) -> str:
    """The instruction for the model: the three reply forms, the tools and agents it may use."""
    lines = [
        "To act, reply with exactly one JSON object and nothing else:",
        '- call a tool: {"tool": "<name>", "arguments": {...}}',
    ]
    if agents:
        lines.append('- ask another agent: {"agent": "<name>", "message": "<text>"}')
    lines.append('- give the final answer: {"answer": "<text>"} (or plain text)')
    if tools:
        lines.append("Tools:")
        lines.extend(f"- {name}: {schema}" for name, schema in sorted(tools.items()))
    if agents:
        lines.append("Agents: " + ", ".join(sorted(agents)))
    return "\n".join(lines)


def _json_candidate(text: str) -> str | None:
    """The part of ``text`` that claims to be JSON, if any."""
    fenced = _FENCE.search(text)
    if fenced:
        return fenced.group(1).strip()
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        return stripped
    start, end = stripped.find("{"), stripped.rfind("}")
    if (
        start != -1
        and end > start
        and ('"tool"' in stripped or '"answer"' in stripped or '"agent"' in stripped)
    ):
        return stripped[start : end + 1]
    return None


def parse_step(text: str) -> Step:
    """Classify one model reply (see the module docstring)."""
    candidate = _json_candidate(text)
    if candidate is None:
        answer = text.strip()
        return FinalAnswer(answer) if answer else Malformed("the reply was empty")
    try:
        value = json.loads(candidate)
    except json.JSONDecodeError as exc:
        return Malformed(f"the JSON did not parse ({exc.msg} at column {exc.colno})")
    if not isinstance(value, dict):
        return Malformed('the JSON must be one object, like {"answer": "..."}')
    if "tool" in value:
        name, arguments = value.get("tool"), value.get("arguments", {})
        if not isinstance(name, str) or not name:
            return Malformed('"tool" must be the name of a tool')
        if not isinstance(arguments, dict):
            return Malformed('"arguments" must be a JSON object')
        return ToolCall(name, arguments)
    if "agent" in value:
        agent, message = value.get("agent"), value.get("message")
        if not isinstance(agent, str) or not agent or not isinstance(message, str):
            return Malformed('asking an agent needs "agent" (a name) and "message" (text)')
        return Delegate(agent, message)
    if "answer" in value:
        answer = value["answer"]
        return FinalAnswer(answer if isinstance(answer, str) else json.dumps(answer))
    return Malformed('the object needs one of the keys "tool", "agent" or "answer"')
