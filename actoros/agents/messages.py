"""What users and workloads send agents, and what they get back.

An agent is asked with a ``UserMessage`` (or, for a rule agent, any msgspec Struct or mapping
of fields) and answers with an ``AgentReply`` — or, when the message says ``stream=True``, at
once with an ``AgentStream`` of ``AgentDelta``s ending in the ``AgentReply``. When it cannot
answer — no rule matches, a syscall is denied, the model's output stays malformed, a step
limit is reached — the ask fails with ``AgentError`` naming the agent and the reason. The
agent itself does not crash: an error is a reply, so its supervisor restarts it only for real
faults.

A message one agent passes to another (a rule's ``forward``, an LLM agent's delegation) carries
in ``via`` the agents it came through. Past ``max_hops`` delegations in one chain (default
``MAX_HOPS``) the next one is refused with ``HopLimitExceeded``, which ends the whole chain:
every agent in it fails its turn with that error, so a cycle (``router`` forwards to ``b``, ``b``
back to ``router``) is one clear error reply naming the path instead of a loop that eats memory.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["AgentError", "AgentReply", "HopLimitExceeded", "MAX_HOPS", "UserMessage", "next_hop"]

MAX_HOPS = 8  # delegations in one chain (see the module docstring)


class UserMessage(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """A turn for an agent: ``text``, the conversation ``thread_id`` it belongs to (``None``:
    an LLM agent starts a new thread and names it in its reply) and extra ``data`` fields
    (rule agents match on them beside ``text``). ``stream=True``: the ask replies at once
    with an ``AgentStream`` of the reply's text as it comes (see ``stream.py``). ``via``: the
    agents that passed this message on, first one first (empty from a user; see ``next_hop``)."""

    text: str
    thread_id: str | None = None
    data: dict[str, Any] = {}
    stream: bool = False
    via: tuple[str, ...] = ()


class AgentReply(msgspec.Struct, frozen=True, kw_only=True):
    """An agent's answer: which ``agent`` answered, the ``text``, the ``thread_id`` the turn
    was recorded in (``None`` for agents without memory), how many ``steps`` it took (model
    calls for an LLM agent, 1 for a rule) and structured ``data`` (a tool's value, a task id).
    ``prompt_tokens`` / ``completion_tokens``: what the turn's model calls used, retries and
    the turns of agents it delegated to included (0 for a turn that used no model).

    Protocol validity, counted like the tokens (delegated turns included): ``model_turns``
    model outputs, of which ``malformed_turns`` did not parse as a protocol step (each one
    retried); ``tools_used``: the tools called, in order, successful or not."""

    agent: str
    text: str
    thread_id: str | None = None
    steps: int = 1
    data: dict[str, Any] = {}
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_turns: int = 0
    malformed_turns: int = 0
    tools_used: tuple[str, ...] = ()


class AgentError(Exception):
    """An agent could not answer; ``str()`` is one line naming the agent and the reason."""

    def __init__(self, agent: str, reason: str) -> None:
        self.agent = agent
        self.reason = reason
        super().__init__(f"agent {agent!r}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # keep it picklable with its two arguments
        return (type(self), (self.agent, self.reason))


class HopLimitExceeded(AgentError):
    """A delegation chain longer than its hop limit (see the module docstring)."""


def next_hop(via: tuple[str, ...], agent: str, target: str, max_hops: int) -> tuple[str, ...]:
    """The ``via`` of the message ``agent`` passes to ``target``, having come ``via`` those
    agents; ``HopLimitExceeded`` (naming the path) when that is one hop past ``max_hops``."""
    hops = (*via, agent)
    if len(hops) <= max_hops:
        return hops
    path = (*hops, target)
    kind = "delegation loop" if len(set(path)) < len(path) else "delegation chain too long"
    names = list(path) if len(path) <= 12 else [*path[:6], "...", *path[-5:]]
    raise HopLimitExceeded(agent, f"{kind}: {' -> '.join(names)}; hop limit {max_hops}")
