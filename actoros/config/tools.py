"""Tools an agent names as ``module:function``: the name each is registered under.

A tool name cannot hold ``':'``, so an agent that lists ``shop.orders:lookup`` directly (in
``tools`` or in ``permissions.tools``) gets that callable registered as the user tool
``lookup``. Two facts follow, kept here in one place so the check and the rewrite agree:

- the checks (``checks.py``) refuse a function name already taken by a different user tool
  (declared in ``services.tools.user`` or named directly by another agent);
- ``normalize_tools(config)`` is the config the system runs: each such tool declared in
  ``services.tools.user`` under its name, and the agents' lists naming it by that name.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from .problems import ConfigError, Key, Problem, render_key
from .schema import USER_TOOL, Config


def direct_tool_name(spec: str) -> str:
    """The name the ``module:function`` tool ``spec`` is registered under: its function's."""
    return spec.rpartition(":")[2].rpartition(".")[2]


def direct_tools(config: Config) -> Iterator[tuple[Key, str]]:
    """``(where, spec)`` for each tool an agent names with a ``':'``, in config order;
    ``where`` is the list item's key."""
    for i, agent in enumerate(config.agents):
        lists = (("tools",), agent.tools), (("permissions", "tools"), agent.permissions.tools)
        for where, tools in lists:
            for j, spec in enumerate(tools or ()):
                if ":" in spec:
                    yield ("agents", i, *where, j), spec


def taken_tool_names(config: Config) -> Iterator[tuple[Key, str, str]]:
    """``(where, name, holder)`` for each well-formed directly named tool whose name a
    different user tool (``holder``) already has."""
    taken = dict(config.services.tools.user)
    for where, spec in direct_tools(config):
        if USER_TOOL.match(spec):
            name = direct_tool_name(spec)
            if taken.setdefault(name, spec) != spec:
                yield where, name, taken[name]


def taken_message(name: str, holder: str) -> str:
    return (
        f"the tool name {name!r} is taken by {holder!r}: declare this one in "
        "services.tools.user under another name"
    )


def malformed_message(spec: str) -> str:
    return f"user tool {spec!r} is not 'module:function'"


def normalize_tools(config: Config) -> Config:
    """``config`` with every directly named tool declared in ``services.tools.user`` and the
    agents' lists naming it by its registered name. A config that did not go through the
    checks may still name a malformed tool, or one function twice: that is a ``ConfigError``
    in the check's words."""
    problems = [
        Problem(render_key(at), None, malformed_message(spec))
        for at, spec in direct_tools(config)
        if not USER_TOOL.match(spec)
    ]
    problems += [
        Problem(render_key(at), None, taken_message(name, holder))
        for at, name, holder in taken_tool_names(config)
    ]
    if problems:
        raise ConfigError("config", problems)
    user = dict(config.services.tools.user)
    agents = []
    for agent in config.agents:
        renamed = {
            spec: direct_tool_name(spec)
            for spec in (*agent.tools, *(agent.permissions.tools or ()))
            if ":" in spec
        }
        if renamed:
            user.update((name, spec) for spec, name in renamed.items())
            perms = agent.permissions
            if perms.tools is not None:
                perms = msgspec.structs.replace(
                    perms, tools=tuple(renamed.get(t, t) for t in perms.tools)
                )
            agent = msgspec.structs.replace(
                agent, tools=tuple(renamed.get(t, t) for t in agent.tools), permissions=perms
            )
        agents.append(agent)
    services = config.services
    tools = msgspec.structs.replace(services.tools, user=user)
    return msgspec.structs.replace(
        config,
        agents=tuple(agents),
        services=msgspec.structs.replace(services, tools=tools),
    )
