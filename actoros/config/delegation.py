"""Delegation cycles a config makes certain: rule agents that forward a message round a loop.

A rule agent forwards the message it got, with the same fields (its text as a string), to
the agent its first matching rule names, and waits for that agent's answer; a message that
comes back to an agent it passed goes round for ever, each hop one more ask waiting. Which
loops are *definite* and which only *possible*:

- definite (``delegation_cycles`` returns them; ``validate`` refuses the config): a loop of
  rule agents, each forwarding by its first matching rule, as permitted, for one message.
  The search walks the forward rules and builds a message from the conditions of the rules on
  a loop, then *replays* that message through the agents' real matching
  (``conditions.first_match``): every cycle returned is one that message goes round.
- possible (not returned): a loop through an llm agent (its model decides whether to ask the
  agents of its ``permissions.agents``), or through rules no one message meets together
  (``match: {kind: x}`` one way, ``match: {kind: y}`` back). The run-time hop limit ends those.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

from .conditions import first_match
from .schema import AgentConfig, Rule

MAX_STEPS = 10_000
"""Forward rules the search follows at most (a config with a few hundred agents is far below):
past it, a loop not yet found is left to the run-time hop limit."""

MAX_LOOP = 64
"""The longest loop searched for, in agents."""


class Hop(NamedTuple):
    """An agent on a loop (by its index in ``agents``) and the rule of its that forwards."""

    agent: int
    rule: int


class Cycle(NamedTuple):
    """A definite loop: its hops in order (the first is the agent listed first in the config)
    and a message that goes round it, as the mapping of fields the rules read."""

    hops: tuple[Hop, ...]
    message: dict[str, Any]

    def names(self, agents: Sequence[AgentConfig]) -> str:
        """``a -> b -> a``."""
        names = [agents[hop.agent].name for hop in self.hops]
        return " -> ".join([*names, names[0]])


def delegation_cycles(agents: Sequence[AgentConfig]) -> list[Cycle]:
    """Every definite delegation cycle among ``agents`` (see the module docstring), each once,
    in the order of the agent each starts at."""
    return _Search(agents).run()


def describe(message: dict[str, Any]) -> str:
    """A message in words for a problem line: "an empty message", "a message like 'order'"."""
    parts = [repr(message["text"])] if message.get("text") else []
    for name, value in message.items():
        if name != "text" and not (name == "thread_id" and value is None):
            parts.append(f"{name}={value!r}")
    return f"a message like {', '.join(parts)}" if parts else "an empty message"


class _Search:
    def __init__(self, agents: Sequence[AgentConfig]) -> None:
        self.agents = agents
        self.index: dict[str, int] = {}
        for i, agent in enumerate(agents):
            self.index.setdefault(agent.name, i)
        self.steps = 0
        self.found: dict[tuple[int, ...], Cycle] = {}

    def run(self) -> list[Cycle]:
        for start, agent in enumerate(self.agents):
            if agent.kind == "rule" and self.index[agent.name] == start:
                self.walk([start], [])
        return sorted(self.found.values(), key=lambda cycle: cycle.hops)

    def forwards(self, agent: int) -> Iterator[tuple[int, Rule, int]]:
        """(rule index, rule, target index) of each permitted forward to another rule agent."""
        config = self.agents[agent]
        for j, rule in enumerate(config.rules):
            target = self.index.get(rule.forward) if rule.forward is not None else None
            if target is None or target == agent or self.agents[target].kind != "rule":
                continue
            if _permitted(config, self.agents[target].name):
                yield j, rule, target

    def walk(self, path: list[int], rules: list[Rule]) -> None:
        """Follow every forward rule out of ``path[-1]``; a rule back onto ``path`` closes a
        loop, tried with a message built from the conditions of the rules on it."""
        for _, rule, target in self.forwards(path[-1]):
            self.steps += 1
            if self.steps > MAX_STEPS:
                return
            if target in path:
                at = path.index(target)
                message = _witness([*rules[at:], rule])
                if message is not None:
                    self.replay(target, message)
            elif len(path) < MAX_LOOP:
                self.walk([*path, target], [*rules, rule])

    def replay(self, start: int, message: dict[str, Any]) -> None:
        """Send ``message`` to agent ``start`` as the agents would; keep the loop it enters."""
        hops: list[Hop] = []
        agent = start
        while True:
            config = self.agents[agent]
            if config.kind != "rule":
                return
            rule = first_match(config.rules, message)
            if rule is None or rule.forward is None or not _permitted(config, rule.forward):
                return
            target = self.index.get(rule.forward)
            if target is None or target == agent:
                return
            hops.append(Hop(agent, config.rules.index(rule)))
            seen = [hop.agent for hop in hops]
            if target in seen:
                loop = hops[seen.index(target) :]
                first = min(range(len(loop)), key=lambda k: loop[k].agent)
                hops = loop[first:] + loop[:first]
                key = tuple(hop.agent for hop in hops)  # one problem per loop of agents
                self.found.setdefault(key, Cycle(tuple(hops), message))
                return
            agent = target


def _permitted(config: AgentConfig, target: str) -> bool:
    """Whether ``config`` may message ``target`` (as the kernel's access control decides:
    names or fnmatch patterns; no list means the agents its rules forward to)."""
    allowed = config.permissions.agents
    if allowed is None:
        return True
    return target in allowed or any(fnmatchcase(target, pattern) for pattern in allowed)


def _witness(rules: Sequence[Rule]) -> dict[str, Any] | None:
    """A forwarded message (``text`` a string, ``thread_id``, other fields) meeting the
    conditions of all ``rules``, or ``None`` when they plainly contradict. Only a guess: the
    replay decides."""
    matched: dict[str, Any] = {}
    for rule in rules:
        for name, value in rule.match.items():
            if name in matched and matched[name] != value:
                return None
            matched[name] = value
    message: dict[str, Any] = {"text": "", "thread_id": None, **matched}
    if not isinstance(message["text"], str):  # a forwarded text is always a string
        return None
    for rule in rules:
        for name, text in rule.contains.items():
            if name in matched:
                continue
            current = message.get(name)
            if not isinstance(current, str) or current.casefold() in text.casefold():
                message[name] = text
            elif text.casefold() not in current.casefold():
                message[name] = f"{current} {text}"
    return message
