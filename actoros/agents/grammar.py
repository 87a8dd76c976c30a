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

__all__ = ["ANSWER_ONLY", "StepGrammar", "required_only", "step_schema"]

ANY_ARGUMENTS: dict[str, Any] = {"type": "object"}  # a tool whose argument schema is unknown


def _closed(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def step_schema(
    tools: Mapping[str, Mapping[str, Any]], agents: Iterable[str] = (), *, answer: bool = True
) -> dict[str, Any]:
    """The schema of one reply that may call any of ``tools`` (name → argument schema), ask
    any of ``agents`` or, when ``answer``, give the final answer (see the module docstring).
    Branches come in a stable order (tools, then agents, sorted by name; the answer last), so
    equal inputs give byte-identical schemas."""
    branches = [
        _closed({"tool": {"const": name}, "arguments": dict(tools[name])}) for name in sorted(tools)
    ]
    names = sorted(set(agents))
    if names:
        branches.append(_closed({"agent": {"enum": names}, "message": {"type": "string"}}))
    if answer or not branches:
        branches.append(_closed({"answer": {"type": "string"}}))
    return {"anyOf": branches}


def required_only(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A tool's argument ``schema`` with its optional properties left out (closed, so the
    model cannot write them): the tool then runs with their defaults. Small models fill in
    every property a schema offers, inventing values for the optional ones (SmolLM2-135M
    writes ``"namespace": "order:1042"`` into ``kv_get``, which then reads nothing)."""
    properties = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, Mapping):
        return dict(schema)
    required = [name for name in schema.get("required", ()) if name in properties]
    trimmed = dict(schema)
    trimmed["properties"] = {name: properties[name] for name in required}
    trimmed["additionalProperties"] = False
    return trimmed


def _allows(patterns: frozenset[str], name: str) -> bool:
    return name in patterns or any(fnmatchcase(name, pattern) for pattern in patterns)


ANSWER_ONLY = JsonSchema(step_schema({}))
"""The grammar of a step that must be the final answer (an agent's last step, or the one
after it repeated a call)."""


class StepGrammar:
    """The constraint of one agent's turns, rebuilt only when its permissions change.

    ``tools``: the tools the agent lists, name → argument schema (``None``: unknown, any
    object); ``agents``: the agents it lists as ones it may ask (no patterns);
    ``optional_arguments=False``: each tool's branch offers only its required arguments
    (``required_only``). ``constraint(permissions)`` is the ``JsonSchema`` for the agent's
    current permissions, or ``None`` when the agent can do nothing but answer (plain text is
    then a valid reply already, and a grammar would only cost tokens and hold back streamed
    text); ``constraint(permissions, answer=False)`` leaves the answer out: the step must
    call a tool or ask an agent (``tool_choice: required``).
    """

    __slots__ = ("_tools", "_agents", "_key", "_constraints", "builds")

    def __init__(
        self,
        tools: Mapping[str, Mapping[str, Any] | None],
        agents: Iterable[str] = (),
        *,
        optional_arguments: bool = True,
    ) -> None:
        trim = dict if optional_arguments else required_only
        self._tools = {name: trim(schema or ANY_ARGUMENTS) for name, schema in tools.items()}
        self._agents = tuple(sorted(set(agents)))
        self._key: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._constraints: dict[bool, JsonSchema | None] = {}
        self.builds = 0  # schemas built so far (one per kind while the permissions hold)

    def permitted(self, permissions: Permissions | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(tools, agents) the agent lists and ``permissions`` allow, sorted."""
        if permissions is None:
            return (), ()
        tools = tuple(t for t in sorted(self._tools) if _allows(permissions.tools, t))
        agents = tuple(a for a in self._agents if _allows(permissions.agents, a))
        return tools, agents

    def constraint(
        self, permissions: Permissions | None, *, answer: bool = True
    ) -> JsonSchema | None:
        key = self.permitted(permissions)
        if key != self._key:
            self._key = key
            self._constraints.clear()
        if answer not in self._constraints:
            tools, agents = key
            self.builds += 1
            self._constraints[answer] = (
                JsonSchema(step_schema({t: self._tools[t] for t in tools}, agents, answer=answer))
                if tools or agents
                else None
            )
        return self._constraints[answer]
