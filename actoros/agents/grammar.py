"""The JSON schema of an LLM agent's reply: the protocol of ``protocol.py`` as a grammar.

With ``AgentConfig.constrain`` the inference engine only lets the model produce a reply that
matches this schema (vLLM's structured outputs), so every constrained turn parses: one
``anyOf`` branch per action the agent may take now —

- per permitted tool: ``{"tool": "<that name>", "arguments": <that tool's own argument
  schema>}``;
- per agent it may ask: ``{"agent": "<that name>", "message": "<text>"}`` (one branch, the
  names as an ``enum``);
- the final answer: ``{"answer": "<text>"}``

— each branch closed (``additionalProperties: false``), its keys in the order the parser of
``protocol.py`` reads them, so ``parse_step`` takes any output of the grammar to exactly one
``ToolCall``, ``Delegate`` or ``FinalAnswer``.

What "permitted" means is the kernel's access rules (``AccessControl``), not the config's
lists alone: a tool the agent lists but may not call is left out, so a permission taken away
at run time takes the branch away too. ``StepGrammar`` builds the schema once per set of
permissions and hands out the same ``JsonSchema`` object while they hold, so the engine
compiles its grammar once (xgrammar caches by schema), not once per turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from actoros.inference.messages import JsonSchema
from actoros.kernel.access import Permissions

__all__ = ["ANSWER_ONLY", "StepGrammar", "step_schema"]

ANY_ARGUMENTS: dict[str, Any] = {"type": "object"}  # a tool whose argument schema is unknown


def _closed(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def step_schema(
    tools: Mapping[str, Mapping[str, Any]], agents: Iterable[str] = ()
) -> dict[str, Any]:
    """The schema of one reply that may call any of ``tools`` (name → argument schema), ask
    any of ``agents`` or give the final answer (see the module docstring). Branches come in
    a stable order (tools, then agents, sorted by name; the answer last), so equal inputs give
    byte-identical schemas."""
    branches = [
        _closed({"tool": {"const": name}, "arguments": dict(tools[name])}) for name in sorted(tools)
    ]
    names = sorted(set(agents))
    if names:
        branches.append(_closed({"agent": {"enum": names}, "message": {"type": "string"}}))
    branches.append(_closed({"answer": {"type": "string"}}))
    return {"anyOf": branches}


def _allows(patterns: frozenset[str], name: str) -> bool:
    return name in patterns or any(fnmatchcase(name, pattern) for pattern in patterns)


ANSWER_ONLY = JsonSchema(step_schema({}))
"""The grammar of a step that must be the final answer (an agent's last step, or the one
after it repeated a call)."""


class StepGrammar:
    """The constraint of one agent's turns, rebuilt only when its permissions change.

    ``tools``: the tools the agent lists, name → argument schema (``None``: unknown, any
    object); ``agents``: the agents it lists as ones it may ask (no patterns).
    ``constraint(permissions)`` is the ``JsonSchema`` for the agent's current permissions,
    or ``None`` when the agent can do nothing but answer (plain text is then a valid reply
    already, and a grammar would only cost tokens and hold back streamed text).
    """

    __slots__ = ("_tools", "_agents", "_key", "_constraint", "builds")

    def __init__(
        self, tools: Mapping[str, Mapping[str, Any] | None], agents: Iterable[str] = ()
    ) -> None:
        self._tools = {name: dict(schema or ANY_ARGUMENTS) for name, schema in tools.items()}
        self._agents = tuple(sorted(set(agents)))
        self._key: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._constraint: JsonSchema | None = None
        self.builds = 0  # schemas built so far (one while the permissions hold)

    def permitted(self, permissions: Permissions | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(tools, agents) the agent lists and ``permissions`` allow, sorted."""
        if permissions is None:
            return (), ()
        tools = tuple(t for t in sorted(self._tools) if _allows(permissions.tools, t))
        agents = tuple(a for a in self._agents if _allows(permissions.agents, a))
        return tools, agents

    def constraint(self, permissions: Permissions | None) -> JsonSchema | None:
        key = self.permitted(permissions)
        if key != self._key:
            tools, agents = key
            self._key = key
            self.builds += 1
            self._constraint = (
                JsonSchema(step_schema({t: self._tools[t] for t in tools}, agents))
                if tools or agents
                else None
            )
        return self._constraint
