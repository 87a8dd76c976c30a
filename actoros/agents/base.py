"""``Agent``: the actor every agent kind builds on — a turn per message, errors as replies.

Each incoming message starts a turn (``handle``) as its own task, so an agent that waits on the
model, a tool or another agent keeps taking messages: a router forwarding twenty questions
does not serialize them, and the inference actor sees them together and batches them. The
ask is answered when the turn ends: its ``AgentReply``, or the ``AgentError`` it raised (any
other exception becomes an ``AgentError`` too, logged with its traceback). The actor never
fails because a turn failed, so a bad message cannot put an agent in a crash loop. An asker
that gives up (its ask timed out) cancels the turn; a ``tell`` with a ``sender`` gets the
outcome told back (except a told ``AgentReply`` or ``AgentError``: answering an outcome with
an outcome would let two agents ping-pong forever). Turns still running when the actor
stops are cancelled and their askers get an ``AgentError``.

Syscalls shared by every kind: ``check`` (the permission check, audited) and ``call_tool``
(a tool through the tool service), so both kinds refuse and fail a tool call in the same
words; each kind only decides how it presents the outcome (a rule agent's reply or error, a
tool message the LLM agent's model reads).

Streaming: an ask with ``UserMessage(stream=True)`` is answered at once with an
``AgentStream`` and the turn runs ``handle_stream(message, emit)``, which pushes text into it
as it comes. By default that is ``handle`` followed by the whole reply text as one delta, so
every agent streams; ``LLMAgent`` overrides it to stream the model's tokens. Closing the
stream cancels the turn, as an asker that gives up does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from actoros.config.schema import AgentConfig
from actoros.core import Actor, ActorRef, Context, DeferredReply
from actoros.kernel.access import AccessControl, CallTool, PermissionDenied, Syscall
from actoros.kernel.tools import ToolResult

from .messages import MAX_HOPS, AgentError, AgentReply, next_hop
from .permissions import agent_access
from .stream import AgentStream, wants_stream

__all__ = ["Agent", "Emit"]

Emit = Callable[[str], None]  # a streamed turn pushes the next piece of its reply text

log = structlog.get_logger("actoros.agents")


class Agent(Actor):
    """Base of ``RuleAgent`` and ``LLMAgent``: subclasses implement ``handle``.

    ``access``: the kernel's shared ``AccessControl`` (``None``: one built from ``config``
    alone). ``tools``: the tool service (``None``: tool calls fail with a clear error).
    ``timeout``: seconds each syscall (ask to a service or agent) may take.
    ``max_hops``: the delegations a chain may take before this agent refuses to pass a message
    on (see ``messages.py``).
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        access: AccessControl | None = None,
        tools: ActorRef | None = None,
        timeout: float = 60.0,
        max_hops: int = MAX_HOPS,
    ) -> None:
        self.config = config
        self.name = config.name
        self.access = agent_access(config, access)
        self.tools = tools
        self.timeout = timeout
        self.max_hops = max_hops
        self._turns: set[asyncio.Task[AgentReply]] = set()

    async def handle(self, message: Any) -> AgentReply:
        """One turn: the reply to ``message``; raise ``AgentError`` when there is none."""
        raise NotImplementedError

    async def handle_stream(self, message: Any, emit: Emit) -> AgentReply:
        """One streamed turn: like ``handle``, and ``emit(text)`` for each piece of the reply
        text as it comes; the pieces joined must be the reply's ``text``. By default the whole
        text is one piece, once the turn is over."""
        reply = await self.handle(message)
        emit(reply.text)
        return reply

    def next_hop(self, via: tuple[str, ...], target: str) -> tuple[str, ...]:
        """The ``via`` of a message passed on to ``target``; raises ``HopLimitExceeded``."""
        return next_hop(via, self.name, target, self.max_hops)

    def check(self, syscall: Syscall) -> None:
        """Raise ``AgentError`` (after the audit log) unless this agent may make ``syscall``."""
        try:
            self.access.check(self.name, syscall)
        except PermissionDenied as exc:
            raise AgentError(self.name, str(exc)) from None

    async def call_tool(self, tool: str, arguments: dict[str, Any]) -> ToolResult:
        """Call ``tool`` with ``arguments`` through the tool service, once the permissions
        allow it. The service's ``ToolResult`` is the outcome, ``ok`` or the tool's own error;
        a call that reached no tool (refused, no tool service, no answer, an answer that is
        not a ``ToolResult``) raises ``AgentError`` naming the tool and the reason."""
        call = CallTool(tool=tool, arguments=arguments)
        self.check(call)
        if self.tools is None:
            raise AgentError(self.name, f"cannot call tool {tool!r}: no tool service")
        try:
            result = await self.tools.ask(call, timeout=self.timeout)
        except Exception as exc:
            raise AgentError(self.name, f"tool {tool!r} did not answer: {exc}") from None
        if not isinstance(result, ToolResult):
            reason = f"tool {tool!r} failed: the tool service answered {type(result).__name__}"
            raise AgentError(self.name, reason)
        return result

    def receive(self, message: Any, ctx: Context) -> None:
        reply = ctx.defer_reply()
        if reply.expected and wants_stream(message):
            self._stream_turn(message, reply)
            return
        # a tell with a sender: tell it the outcome — unless the message is itself an outcome,
        # or two agents would tell each other their replies (and errors) forever
        told_back = not reply.expected and not isinstance(message, (AgentReply, AgentError))
        sender = ctx.sender if told_back else None
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

    def _stream_turn(self, message: Any, reply: DeferredReply) -> None:
        """Answer the ask with an ``AgentStream`` now; the turn feeds it and ends it."""
        if reply.done:  # the asker gave up while the message waited: nobody would read
            return
        turn: asyncio.Task[AgentReply] | None = None

        def close() -> None:  # the reader closed the stream early
            if turn is not None and not turn.done():
                turn.cancel()

        stream = AgentStream(self.name, close)
        turn = asyncio.ensure_future(self.handle_stream(message, stream._delta))
        self._turns.add(turn)

        def finished(task: asyncio.Task[AgentReply]) -> None:
            self._turns.discard(task)
            stream._end(self._outcome(task, message))

        turn.add_done_callback(finished)
        reply.resolve(stream)

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
