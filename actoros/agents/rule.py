"""``RuleAgent``: decides by the rules of its config — condition → action, first match wins.

A message is seen as a mapping of fields: a ``UserMessage`` is its ``text``, ``thread_id`` and
``data`` fields; a plain string is ``{text: ...}``; a mapping or msgspec Struct is itself.
A rule matches when every ``match`` field equals its value and every ``contains`` field holds
its text (case-insensitive); a rule with neither matches everything. The first match acts:

- ``reply``: answer with its text;
- ``forward``: ask that agent with the message; its ``AgentReply`` is the answer (one hop
  more on the message's ``via``: a forwarding cycle ends at the hop limit, see ``messages.py``);
- ``tool``: call the tool with ``args`` through the tool service; the answer carries its value;
- ``submit``: submit a ``Task`` to the scheduler; the answer carries the task id.

Texts in ``reply``, ``args`` and ``submit.payload`` may name message fields as ``{field}``:
an argument that is exactly ``"{field}"`` takes the field's value as it is (a number stays a
number), elsewhere the field is written into the text; unknown names are left alone.
A streamed ask (``UserMessage(stream=True)``) shows the reply's text in one piece, except a
``forward``, which relays the other agent's stream as it comes.
Every syscall is checked against the agent's permissions first; a denial, an unknown agent, a
failed tool and a message no rule matches are ``AgentError`` replies, never a crash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from actoros.config.conditions import first_match, matches
from actoros.config.schema import AgentConfig, Rule
from actoros.core import ActorRef
from actoros.kernel.access import AccessControl, SendTo
from actoros.kernel.scheduler import Submit, Task

from .base import Agent, Emit
from .messages import MAX_HOPS, AgentError, AgentReply, UserMessage
from .permissions import check_submit
from .stream import AgentStream

__all__ = ["RuleAgent", "fields_of", "first_match", "matches"]

ResolveAgent = Callable[[str], ActorRef | None]

_FIELD = re.compile(r"\{(\w+)\}")


def fields_of(message: Any) -> dict[str, Any]:
    """The message as a mapping of fields (see the module docstring)."""
    match message:
        case UserMessage(text=text, thread_id=thread_id, data=data):
            return {**data, "text": text, "thread_id": thread_id}
        case str():
            return {"text": message}
        case Mapping():
            return dict(message)
        case msgspec.Struct():
            return msgspec.structs.asdict(message)
    raise TypeError(f"a rule agent cannot read a {type(message).__name__} message")


def fill(template: Any, fields: Mapping[str, Any]) -> Any:
    """``template`` with ``{field}`` names replaced (recursively in lists and mappings)."""
    match template:
        case str():
            whole = _FIELD.fullmatch(template)
            if whole and whole.group(1) in fields:
                return fields[whole.group(1)]
            return _FIELD.sub(
                lambda m: _text(fields[m.group(1)]) if m.group(1) in fields else m.group(0),
                template,
            )
        case Mapping():
            return {key: fill(value, fields) for key, value in template.items()}
        case list() | tuple():
            return [fill(value, fields) for value in template]
    return template


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


class RuleAgent(Agent):
    """An agent that acts by its config's ``rules`` (see the module docstring).

    ``resolve_agent(name)`` finds the agent a rule forwards to (``None``: no such agent);
    ``tools`` is the tool service and ``scheduler`` the scheduler (``None``: rules that need
    them fail with a clear error).
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        resolve_agent: ResolveAgent | None = None,
        tools: ActorRef | None = None,
        scheduler: ActorRef | None = None,
        access: AccessControl | None = None,
        timeout: float = 60.0,
        max_hops: int = MAX_HOPS,
    ) -> None:
        super().__init__(config, access=access, tools=tools, timeout=timeout, max_hops=max_hops)
        self.resolve_agent = resolve_agent
        self.scheduler = scheduler

    async def handle(self, message: Any) -> AgentReply:
        return await self._act(message, None)

    async def handle_stream(self, message: Any, emit: Emit) -> AgentReply:
        return await self._act(message, emit)

    async def _act(self, message: Any, emit: Emit | None) -> AgentReply:
        """The first matching rule's action; a streamed turn shows the reply's text whole,
        except a forward, which relays the other agent's stream as it comes."""
        try:
            fields = fields_of(message)
        except TypeError as exc:
            raise AgentError(self.name, str(exc)) from None
        rule = first_match(self.config.rules, fields)
        if rule is None:
            raise AgentError(self.name, f"no rule matches the message {_preview(fields)}")
        thread_id = fields.get("thread_id")
        if rule.forward is not None:
            return await self._forward(rule.forward, message, fields, emit)
        if rule.reply is not None:
            text = fill(rule.reply, fields)
            reply = AgentReply(agent=self.name, text=text, thread_id=thread_id)
        elif rule.tool is not None:
            reply = await self._tool_reply(rule.tool, fill(rule.args, fields), thread_id)
        elif rule.submit is not None:
            reply = await self._submit(rule, fields)
        else:
            raise AgentError(self.name, "the matching rule has no action")
        if emit is not None:
            emit(reply.text)
        return reply

    async def _forward(
        self, target: str, message: Any, fields: dict[str, Any], emit: Emit | None
    ) -> AgentReply:
        self.check(SendTo(agent=target))
        ref = self.resolve_agent(target) if self.resolve_agent is not None else None
        if ref is None:
            raise AgentError(self.name, f"cannot forward to unknown agent {target!r}")
        if not isinstance(message, UserMessage):
            rest = {k: v for k, v in fields.items() if k not in ("text", "thread_id")}
            message = UserMessage(
                text=_text(fields.get("text", "")), thread_id=fields.get("thread_id"), data=rest
            )
        via = self.next_hop(message.via, target)  # a forwarding cycle ends here
        message = msgspec.structs.replace(message, stream=emit is not None, via=via)
        try:
            reply = await ref.ask(message, timeout=self.timeout)
            if emit is not None and isinstance(reply, AgentStream):
                reply = await _relay(reply, emit)
        except AgentError:
            raise
        except Exception as exc:
            raise AgentError(self.name, f"agent {target!r} did not answer: {exc}") from None
        if not isinstance(reply, AgentReply):
            raise AgentError(self.name, f"agent {target!r} answered {type(reply).__name__}")
        return reply

    async def _tool_reply(self, tool: str, args: dict[str, Any], thread_id: Any) -> AgentReply:
        """The tool's value as the reply; a failed call is the turn's ``AgentError``."""
        result = await self.call_tool(tool, args)
        if not result.ok:
            raise AgentError(self.name, f"tool {tool!r} failed: {result.error}")
        return AgentReply(
            agent=self.name,
            text=_text(result.value),
            thread_id=thread_id,
            data={"tool": tool, "value": result.value},
        )

    async def _submit(self, rule: Rule, fields: dict[str, Any]) -> AgentReply:
        action = rule.submit
        assert action is not None
        try:
            check_submit(self.config, action.kind)
        except Exception as exc:
            raise AgentError(self.name, str(exc)) from None
        if self.scheduler is None:
            raise AgentError(self.name, f"cannot submit a {action.kind!r} task: no scheduler")
        payload = fill(action.payload, fields) if action.payload is not None else fields
        if not isinstance(payload, dict):
            payload = {"value": payload}
        task = Task(kind=action.kind, payload=payload, priority=action.priority)
        try:
            task_id = await self.scheduler.ask(Submit(task=task), timeout=self.timeout)
        except Exception as exc:
            raise AgentError(self.name, f"the scheduler refused the task: {exc}") from None
        return AgentReply(
            agent=self.name,
            text=f"submitted {action.kind} task {task_id}",
            thread_id=fields.get("thread_id"),
            data={"task_id": task_id, "kind": action.kind},
        )


async def _relay(stream: AgentStream, emit: Emit) -> AgentReply:
    """Show another agent's streamed turn as it comes; its reply is the result."""
    async with stream:  # this turn cancelled: the other agent's turn is cancelled too
        async for item in stream:
            if isinstance(item, AgentReply):
                return item
            emit(item.text)
    raise AgentError(stream.agent, "the stream ended without a reply")


def _preview(fields: Mapping[str, Any], limit: int = 80) -> str:
    text = json.dumps({k: v for k, v in fields.items() if v is not None}, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
