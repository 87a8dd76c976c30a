"""From an agent's config to the kernel's access rules, and the check an agent runs itself.

``AgentConfig.permissions`` leaves some sets open (``None``); ``access_permissions`` fills them
as the schema documents: ``tools`` defaults to the agent's ``tools``, ``agents`` to the agents
its rules forward to (none for an LLM agent). The result is the kernel's ``Permissions``, so an
agent and the kernel services judge a syscall by the same ``AccessControl``.
"""

from __future__ import annotations

import structlog

from actoros.config.schema import AgentConfig
from actoros.kernel.access import AccessControl, PermissionDenied, Permissions

__all__ = ["access_permissions", "agent_access", "check_submit"]

audit = structlog.get_logger("actoros.audit")


def access_permissions(config: AgentConfig) -> Permissions:
    """The kernel ``Permissions`` that ``config`` grants (see the module docstring)."""
    perms = config.permissions
    tools = perms.tools if perms.tools is not None else config.tools
    if perms.agents is not None:
        agents: tuple[str, ...] = perms.agents
    else:
        agents = tuple(rule.forward for rule in config.rules if rule.forward is not None)
    return Permissions(
        tools=frozenset(tools),
        agents=frozenset(agents),
        topics=frozenset(perms.topics),
        inference=perms.inference,
    )


def agent_access(config: AgentConfig, access: AccessControl | None) -> AccessControl:
    """``access`` when the kernel shares one; else one that knows only this agent."""
    if access is not None:
        return access
    return AccessControl({config.name: access_permissions(config)})


def check_submit(config: AgentConfig, kind: str) -> None:
    """Scheduler submissions are allowed by ``permissions.submit`` (the kernel's access rules
    have no syscall for them); a refusal is audited like the others."""
    if config.permissions.submit:
        audit.debug("audit.allowed", agent=config.name, syscall="submit", target=kind)
        return
    reason = f"agent {config.name!r} may not submit tasks"
    audit.warning("audit.denied", agent=config.name, syscall="submit", target=kind, reason=reason)
    raise PermissionDenied(config.name, "submit", kind, reason)
