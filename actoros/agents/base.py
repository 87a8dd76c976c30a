"""``Agent``: the actor every agent kind builds on — a turn per message, errors as replies.

Each incoming message starts a turn (``handle``) as its own task, so an agent that waits on the
model, a tool or another agent keeps taking messages: a router forwarding twenty questions
does not serialize them, and the inference actor sees them together and batches them. The
ask is answered when the turn ends: its ``AgentReply``, or the ``AgentError`` it raised (any
other exception becomes an ``AgentError`` too, logged with its traceback). The actor never
fails because a turn failed, so a bad message cannot put an agent in a crash loop. An asker
that gives up (its ask timed out) cancels the turn; a ``tell`` with a ``sender`` gets the
outcome told back. Turns still running when the actor stops are cancelled and their askers
get an ``AgentError``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from actoros.config.schema import AgentConfig
from actoros.core import Actor, ActorRef, Context
from actoros.kernel.access import AccessControl, PermissionDenied, Syscall

from .messages import AgentError, AgentReply
from .permissions import agent_access

__all__ = ["Agent"]

log = structlog.get_logger("actoros.agents")


class Agent(Actor):
    """Base of ``RuleAgent`` and ``LLMAgent``: subclasses implement ``handle``.

    ``access``: the kernel's shared ``AccessControl`` (``None``: one built from ``config``
    alone). ``timeout``: seconds each syscall (ask to a service or agent) may take.
    """

    def __init__(
        self, config: AgentConfig, *, access: AccessControl | None = None, timeout: float = 60.0
    ) -> None:
        self.config = config
        self.name = config.name
        self.access = agent_access(config, access)
        self.timeout = timeout
        self._turns: set[asyncio.Task[AgentReply]] = set()

    async def handle(self, message: Any) -> AgentReply:
        """One turn: the reply to ``message``; raise ``AgentError`` when there is none."""
        raise NotImplementedError

    def check(self, syscall: Syscall) -> None:
        """Raise ``AgentError`` (after the audit log) unless this agent may make ``syscall``."""
        try:
            self.access.check(self.name, syscall)
        except PermissionDenied as exc:
            raise AgentError(self.name, str(exc)) from None

    def receive(self, message: Any, ctx: Context) -> None:
        reply = ctx.defer_reply()
        sender = None if reply.expected else ctx.sender  # a tell with a sender: tell it back
        # the task inherits the actor's context, so its asks name this agent as the sender
        turn = asyncio.ensure_future(self.handle(message))
        self._turns.add(turn)

        def finished(task: asyncio.Task[AgentReply]) -> None:
            self._turns.discard(task)
            outcome = self._outcome(task, message)
            if isinstance(outcome, AgentError):
                reply.fail(outcome)
            else:
                reply.resolve(outcome)
            if sender is not None:
                _tell_back(sender, outcome, ctx.self)
            elif not reply.expected and isinstance(outcome, AgentError):
                log.warning("agent.error", agent=self.name, error=str(outcome))

        turn.add_done_callback(finished)
        if reply.expected:  # an asker that gives up cancels the turn

            def asker_gone() -> None:
                if not turn.done():
                    turn.cancel()

            reply.on_done(asker_gone)

    def _outcome(self, task: asyncio.Task[AgentReply], message: Any) -> AgentReply | AgentError:
        if task.cancelled():
            return AgentError(self.name, "the turn was cancelled (asker gone or agent stopped)")
        error = task.exception()
        if error is None:
            return task.result()
        if isinstance(error, AgentError):
            log.info("agent.refused", agent=self.name, error=error.reason)
            return error
        log.error("agent.turn_failed", agent=self.name, message=repr(message), exc_info=error)
        return AgentError(self.name, f"internal error: {type(error).__name__}: {error}")

    async def on_stop(self) -> None:
        for turn in list(self._turns):
            turn.cancel()


def _tell_back(sender: ActorRef, outcome: AgentReply | AgentError, me: ActorRef) -> None:
    try:
        sender.tell(outcome, sender=me)
    except Exception as exc:  # a full mailbox must not fail the agent
        log.warning("agent.tell_back_failed", recipient=sender.path, error=str(exc))
