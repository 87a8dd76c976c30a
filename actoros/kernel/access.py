"""Syscalls and who may make them: per-agent ``Permissions`` checked by ``AccessControl``.

A syscall is a message from an agent to a kernel service (docs/architecture.md, "Glossary"): a
tool call, a message to another agent, a publish on a topic, an inference request. The services
that receive one ask ``AccessControl.check(agent, syscall)`` before doing anything; a denial raises
``PermissionDenied`` (the service turns it into an error reply, never a crash) and logs an
``audit.denied`` event at warning level, so every refusal leaves a trace. Allowed syscalls log
``audit.allowed`` at debug level.

Permissions are deny-by-default: an agent the control does not know, or a name missing from its
sets, is refused. Entries are ``fnmatch`` patterns, so ``"*"`` allows everything and
``"orders.*"`` a family of topics.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

import msgspec
import structlog

__all__ = [
    "AccessControl",
    "CallTool",
    "Infer",
    "PermissionDenied",
    "Permissions",
    "Publish",
    "SendTo",
    "Syscall",
]

audit = structlog.get_logger("actoros.audit")


class CallTool(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Run the tool ``tool`` with ``arguments`` (a JSON object); the reply is a ``ToolResult``."""

    tool: str
    arguments: dict[str, Any] = {}


class SendTo(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Send a message to the agent named ``agent``."""

    agent: str


class Publish(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Publish ``message`` on ``topic``: every subscriber is told this ``Publish``."""

    topic: str
    message: Any = None


class Infer(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Use the inference actor (the LLM)."""


Syscall = CallTool | SendTo | Publish | Infer
"""Every syscall: tagged Structs (decodable by their ``type`` field), dispatched with ``match``.
``CallTool`` is also the tool service's request, ``Publish`` the pubsub service's."""


class PermissionDenied(Exception):
    """An agent made a syscall its permissions do not allow."""

    def __init__(self, agent: str | None, syscall: str, target: str | None, reason: str) -> None:
        self.agent = agent
        self.syscall = syscall
        self.target = target
        self.reason = reason
        super().__init__(f"permission denied: {reason}")


class Permissions(msgspec.Struct, frozen=True, kw_only=True):
    """What one agent may do. Each set holds names or ``fnmatch`` patterns (``"*"``: all).

    ``tools``: tools it may call; ``agents``: agents it may message; ``topics``: topics it may
    publish on; ``inference``: whether it may use the LLM.
    """

    tools: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    topics: frozenset[str] = frozenset()
    inference: bool = False

    @classmethod
    def allow_all(cls) -> Permissions:
        everything = frozenset({"*"})
        return cls(tools=everything, agents=everything, topics=everything, inference=True)


def _allows(patterns: frozenset[str], name: str) -> bool:
    return name in patterns or any(fnmatchcase(name, pattern) for pattern in patterns)


def describe(syscall: Syscall) -> tuple[str, str | None]:
    """(syscall kind, its target) as they appear in audit events."""
    match syscall:
        case CallTool(tool=tool):
            return "call_tool", tool
        case SendTo(agent=agent):
            return "send_to", agent
        case Publish(topic=topic):
            return "publish", topic
        case Infer():
            return "infer", None
        case _:
            raise TypeError(f"not a syscall: {syscall!r}")


class AccessControl:
    """The permissions of every agent, and the check every kernel service runs.

    ``permissions`` maps agent names to their ``Permissions``; ``default`` applies to agents
    missing from it (``None``: such agents are refused everything).
    """

    def __init__(
        self,
        permissions: Mapping[str, Permissions] | None = None,
        *,
        default: Permissions | None = None,
    ) -> None:
        self._permissions: dict[str, Permissions] = dict(permissions or {})
        self._default = default

    def grant(self, agent: str, permissions: Permissions) -> None:
        """Set (replace) the permissions of ``agent``."""
        self._permissions[agent] = permissions

    def permissions_for(self, agent: str | None) -> Permissions | None:
        if agent is None:
            return None
        return self._permissions.get(agent, self._default)

    def check(self, agent: str | None, syscall: Syscall) -> None:
        """Return if ``agent`` may make ``syscall``; else log ``audit.denied`` and raise
        ``PermissionDenied``. ``agent=None`` is a caller nobody could name: always refused."""
        kind, target = describe(syscall)
        reason = self._refusal(agent, syscall, kind, target)
        if reason is None:
            audit.debug("audit.allowed", agent=agent, syscall=kind, target=target)
            return
        audit.warning("audit.denied", agent=agent, syscall=kind, target=target, reason=reason)
        raise PermissionDenied(agent, kind, target, reason)

    def allowed(self, agent: str | None, syscall: Syscall) -> bool:
        """``check`` as a boolean (still audited)."""
        try:
            self.check(agent, syscall)
        except PermissionDenied:
            return False
        return True

    def _refusal(
        self, agent: str | None, syscall: Syscall, kind: str, target: str | None
    ) -> str | None:
        """Why ``syscall`` is refused, or ``None`` if it is allowed."""
        if agent is None:
            what = f"{kind} {target!r}" if target is not None else kind
            return f"unknown caller may not {what}"
        perms = self.permissions_for(agent)
        if perms is None:
            return f"agent {agent!r} has no permissions"
        match syscall:
            case CallTool(tool=tool) if not _allows(perms.tools, tool):
                return f"agent {agent!r} may not call tool {tool!r}"
            case SendTo(agent=other) if not _allows(perms.agents, other):
                return f"agent {agent!r} may not message agent {other!r}"
            case Publish(topic=topic) if not _allows(perms.topics, topic):
                return f"agent {agent!r} may not publish on topic {topic!r}"
            case Infer() if not perms.inference:
                return f"agent {agent!r} may not use inference"
        return None


def caller_name(names: Mapping[Any, str], sender: Any) -> str | None:
    """The agent name of ``sender`` (an ``ActorRef``) in ``names``: keyed by the ref itself or
    by its path. ``None`` when the sender is unknown."""
    if sender is None:
        return None
    name = names.get(sender)
    if name is None:
        name = names.get(getattr(sender, "path", None))
    return name
