"""``LLMAgent``: system prompt + thread memory → the inference actor → tool calls → reply.

A turn (one ``UserMessage``) runs the loop of ``protocol.py``:

1. the user's text is appended to the conversation thread (a new thread when the message
   names none; the reply names it, so the next turn continues it);
2. the thread store builds the prompt — the system prompt with the protocol instruction, then
   the thread, folded to fit the context — and the inference actor completes it;
3. ``parse_step`` classifies the output: a ``ToolCall`` runs through the tool service, a
   ``Delegate`` asks another agent (one hop more on the turn's ``via``: past the hop limit the
   whole chain ends with ``HopLimitExceeded``, see ``messages.py``); the step and its result
   are appended to the thread (the result as a ``tool`` message, errors and denials included,
   so the model can recover) and the loop goes on; a ``FinalAnswer`` is appended as
   ``assistant`` and is the reply; ``Malformed`` output gets one retry with a note saying what
   was wrong (the bad output and the note are not stored); malformed again is an ``AgentError``;
4. at most ``config.max_steps`` model calls per turn, then an ``AgentError``. A model call
   that meets a dying engine (``EngineUnavailable``, or ``ActorStopped``: the engine's node
   was lost under it) is not one of them: it is asked again once the supervisor has replaced
   the engine, or of another engine (``ENGINE_RETRIES``), since the kernel's fault is not the
   turn's outcome.

Constrained turns (``AgentConfig.constrain``, on by default): every model call carries the
agent's reply grammar (``grammar.py``: one branch per tool it may call now, one for the agents
it may ask, one for the answer), so the engine only lets the model write a well-formed step;
the grammar is built once and rebuilt only when the agent's permissions change. An answer
the grammar opened but ``max_tokens`` cut short is the answer as far as it got (as a cut
plain-text answer is), not malformed output. The last
step's grammar (``max_steps``) lets the model only answer, so a constrained turn ends with an
answer; a constrained step that repeats a call of the same turn (small models loop on one)
is not run again: its result is in the thread already, and the next step must answer. With
``tool_choice: required`` the first step's grammar has no answer branch (it must call a tool
or ask an agent); with ``optional_arguments: false`` a call offers only the tool's required
arguments (see ``grammar.py``). An engine that
cannot enforce constraints answers ``ConstraintsUnsupported``: the agent says so once in the
log (``agent.constraints_unsupported``) and goes on unconstrained, with the parse-and-retry
path above. An agent that can only answer (no tools, no agents to ask) sends no grammar: plain
text is a valid final answer already.

Protocol validity: each turn counts its model outputs and those that did not parse, its
delegated turns included, in its ``AgentReply`` (``model_turns``, ``malformed_turns``,
``tools_used``) and in one ``agent.turn`` log event, failed turns too.

The prompt is laid out for the engine's prefix cache (vLLM reuses the KV cache of a prefix
that is byte-identical, in full blocks): the stable part first — the agent's system prompt,
then the protocol and its tools, sorted, with nothing per agent, per turn or per time in it —
so agents that share a system prompt and tools share that prefix; then the thread's running
summary; then the recent turns.

The actor keeps no conversation state: everything a later turn needs is in the thread store,
so an agent restarted by its supervisor carries on with its threads as they were. Turns of
one thread run one after another; turns of different threads run at once.

Streaming (``UserMessage(stream=True)``): each step is generated with ``Generate(stream=True)``
and its tokens are shown as they come, as far as the protocol allows — a step is known to be
the final answer only once its whole output parses (``StepFilter``):

- an output that starts (after whitespace) with ``{``, ``[`` or a backtick is JSON-looking and
  is held back whole; if it parses as the final answer, the answer is shown in one piece.
  Tool calls, delegations and malformed JSON outputs therefore show nothing. A constrained
  step is the exception: its grammar lets ``{"answer": "`` begin nothing but the final
  answer, so the answer's text is shown as it comes, decoded from its JSON string;
- any other output is plain text, the final answer unless JSON follows: it is shown as it
  comes, except leading and trailing whitespace (the answer is stripped) and everything from
  the first ``{`` or backtick on, which is held back until the step ends; a final answer then
  shows the rest.

The exception: plain text shown, then embedded JSON makes the step a tool call, a delegation,
a malformed output (retried) or an answer that is not a continuation of the text. What was
shown cannot be taken back, and the reader must not be told a different story, so that
"interlude" counts as said: a later step's text is shown after a blank line (``"\n\n"``),
and the ``AgentReply.text`` of a streamed turn is everything shown — the concatenated deltas,
always — with the final answer alone in ``data["answer"]`` when the two differ. The thread
records the steps as they were (the interlude inside its step, the answer alone), and a turn
without interludes — the common case — replies the same text streamed or not.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import structlog

from actoros.config.schema import AgentConfig
from actoros.core import ActorRef, ActorStopped
from actoros.inference.actor import CompletionStream
from actoros.inference.errors import ConstraintsUnsupported, EngineUnavailable
from actoros.inference.messages import ChatMessage, Completion, Generate, JsonSchema, TokenDelta
from actoros.kernel.access import AccessControl, Infer, Permissions, SendTo
from actoros.kernel.keyed_lock import KeyedLock
from actoros.kernel.threads import (
    Append,
    BuildPrompt,
    CreateThread,
    NewMessage,
    PromptMessage,
    default_count_tokens,
)

from .base import Agent, Emit
from .grammar import ANSWER_ONLY, StepGrammar
from .messages import MAX_HOPS, AgentError, AgentReply, HopLimitExceeded, UserMessage
from .protocol import Delegate, FinalAnswer, Malformed, ToolCall, parse_step, protocol_prompt
from .showing import Shown, StepFilter, cut_answer

__all__ = ["LLMAgent", "StepFilter"]

log = structlog.get_logger("actoros.agents.llm")

ResolveAgent = Callable[[str], ActorRef | None]

#: How often a model call is asked again after the engine died under it (see ``_complete``).
ENGINE_RETRIES = 2


class LLMAgent(Agent):
    """An agent driven by a model (see the module docstring).

    ``inference``: the inference actor; ``threads``: the thread store; ``tools``: the tool
    service (``None``: tool calls get an error result); ``resolve_agent(name)``: the agent to
    delegate to (``None``: no such agent); ``tool_schemas``: tool name → the description and
    argument schema shown to the model (``ToolRegistry.summaries()``); ``tool_parameters``:
    tool name → its JSON schema of arguments, for the reply grammar (a tool missing from it
    takes any object). ``context_tokens``: the model's context length; the prompt gets what
    ``max_tokens`` leaves of it.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        inference: ActorRef,
        threads: ActorRef,
        tools: ActorRef | None = None,
        resolve_agent: ResolveAgent | None = None,
        tool_schemas: Mapping[str, str] | None = None,
        tool_parameters: Mapping[str, Mapping[str, Any]] | None = None,
        access: AccessControl | None = None,
        timeout: float = 120.0,
        context_tokens: int = 2048,
        max_hops: int = MAX_HOPS,
    ) -> None:
        super().__init__(config, access=access, tools=tools, timeout=timeout, max_hops=max_hops)
        self.inference = inference
        self.threads = threads
        self.resolve_agent = resolve_agent
        schemas = tool_schemas or {}
        self.system_prompt = system_prompt(config, {t: schemas.get(t, "") for t in config.tools})
        parameters = tool_parameters or {}
        self.grammar = StepGrammar(
            {t: parameters.get(t) for t in config.tools},
            delegate_targets(config),
            optional_arguments=config.optional_arguments,
        )
        self.constrain = config.constrain  # False once the engine said it cannot
        self.budget = max(64, context_tokens - config.max_tokens)
        self._locks: KeyedLock[str] = KeyedLock()  # one turn at a time per thread

    async def handle(self, message: Any) -> AgentReply:
        return await self._handle(message, None)

    async def handle_stream(self, message: Any, emit: Emit) -> AgentReply:
        return await self._handle(message, emit)

    async def _handle(self, message: Any, emit: Emit | None) -> AgentReply:
        match message:
            case UserMessage():
                pass
            case str():
                message = UserMessage(text=message)
            case _:
                raise AgentError(self.name, f"cannot read a {type(message).__name__} message")
        self.check(Infer())
        thread_id = message.thread_id
        if thread_id is None:
            thread_id = await self._syscall(self.threads, CreateThread(title=self.name), "threads")
        async with self._locks.hold(thread_id):
            return await self._turn(thread_id, message.text, message.via, emit)

    async def _turn(
        self, thread_id: str, text: str, via: tuple[str, ...], emit: Emit | None
    ) -> AgentReply:
        usage = _Usage()  # the tokens of this turn's model calls and delegated turns
        try:
            return await self._steps(thread_id, text, via, emit, usage)
        finally:
            log.info(
                "agent.turn",
                agent=self.name,
                model_turns=usage.model_turns,
                malformed_turns=usage.malformed,
                tools=list(usage.tools),
                constrained=self._constraint() is not None,
            )

    async def _steps(
        self, thread_id: str, text: str, via: tuple[str, ...], emit: Emit | None, usage: _Usage
    ) -> AgentReply:
        await self._append(thread_id, NewMessage(role="user", content=text))
        shown = Shown(emit) if emit is not None else None
        retry_used = False  # the previous output was malformed: one retry only
        retry: tuple[ChatMessage, ...] = ()  # after malformed output: it and the correction
        calls: set[str] = set()  # the tool calls and delegations of this turn, as JSON
        answer_now = False  # a constrained step repeated a call: the next one must answer
        last = self.config.max_steps
        for step in range(1, last + 1):
            constraint = self._constraint(
                answer_only=answer_now or step == last,
                act=step == 1 and self.config.tool_choice == "required",
            )
            step_filter = (
                StepFilter(answer_json=constraint is not None) if shown is not None else None
            )
            output = await self._generate(thread_id, retry, usage, constraint, step_filter, shown)
            retry = ()
            parsed = parse_step(output)
            if isinstance(parsed, Malformed) and constraint is not None:
                parsed = cut_answer(output) or parsed
            usage.model_turns += 1
            if shown is not None and step_filter is not None:
                shown.step_ended(step_filter, parsed)
            match parsed:
                case FinalAnswer(text=answer):
                    await self._append(thread_id, self._said(answer))
                    said = answer if shown is None else shown.text
                    data = {} if said == answer else {"answer": answer}
                    return AgentReply(
                        agent=self.name,
                        text=said,
                        thread_id=thread_id,
                        steps=step,
                        data=data,
                        prompt_tokens=usage.prompt,
                        completion_tokens=usage.completion,
                        model_turns=usage.model_turns,
                        malformed_turns=usage.malformed,
                        tools_used=tuple(usage.tools),
                    )
                case Malformed(reason=reason):
                    usage.malformed += 1
                    if retry_used:
                        raise AgentError(self.name, f"malformed model output twice: {reason}")
                    log.info("agent.malformed", agent=self.name, reason=reason)
                    retry = (
                        ChatMessage("assistant", output),
                        ChatMessage("user", correction(reason)),
                    )
                    retry_used = True
                    continue
                case ToolCall(tool=tool, arguments=arguments):
                    call = {"tool": tool, "arguments": arguments}
                    if self._repeated(call, calls, constraint):
                        answer_now = True
                        continue
                    await self._append(thread_id, self._said(output, call))
                    usage.tools.append(tool)
                    result = await self._use_tool(tool, arguments)
                    await self._append(thread_id, self._tool_message(result))
                case Delegate(agent=agent, message=question):
                    call = {"agent": agent, "message": question}
                    if self._repeated(call, calls, constraint):
                        answer_now = True
                        continue
                    await self._append(thread_id, self._said(output, call))
                    result = await self._delegate(agent, question, via, usage)
                    await self._append(thread_id, self._tool_message(result))
            retry_used = False
        raise AgentError(self.name, f"no final answer within {self.config.max_steps} model calls")

    def _repeated(self, call: dict[str, Any], calls: set[str], constraint: Any) -> bool:
        """Whether a constrained step repeats a call of this turn (its result is in the thread
        already: small models loop on it); the call is remembered otherwise."""
        key = json.dumps(call, sort_keys=True, default=str)
        if key in calls and constraint is not None:
            log.info("agent.repeated_call", agent=self.name, call=key[:200])
            return True
        calls.add(key)
        return False

    # -- syscalls --------------------------------------------------------------------------

    async def _generate(
        self,
        thread_id: str,
        retry: tuple[ChatMessage, ...],
        usage: _Usage,
        constraint: JsonSchema | None = None,
        step_filter: StepFilter | None = None,
        shown: Shown | None = None,
    ) -> str:
        """One model call on the thread's prompt; when the turn streams, its output goes
        through ``step_filter`` into ``shown`` as it comes."""
        self.check(Infer())
        # the retry messages ride on top of the built prompt: leave room for them
        spare = sum(default_count_tokens(PromptMessage(m.role, m.content)) for m in retry)
        build = BuildPrompt(
            thread_id=thread_id,
            system_prompt=self.system_prompt,
            budget_tokens=max(16, self.budget - spare),
        )
        prompt = await self._syscall(self.threads, build, "threads")
        messages = tuple(ChatMessage(m.role, m.content) for m in prompt) + retry  # type: ignore[arg-type]
        gen = Generate(
            messages=messages,
            max_tokens=self.config.max_tokens,
            temperature=self.config.temperature,
            stream=shown is not None,
            constraint=constraint,
        )
        completion = await self._complete(gen, step_filter, shown)
        if not isinstance(completion, Completion):
            raise AgentError(self.name, f"inference answered {type(completion).__name__}")
        usage.add(completion.usage.prompt_tokens, completion.usage.completion_tokens)
        return completion.text

    async def _complete(
        self, gen: Generate, step_filter: StepFilter | None, shown: Shown | None
    ) -> Any:
        """The model's completion of ``gen`` (streamed into ``shown`` when the turn streams).

        An engine that dies under the request (``EngineUnavailable``: the inference actor's
        supervisor is restarting it) is a fault of the kernel, not an outcome of the turn, so
        the step is asked again once the engine is back, up to ``ENGINE_RETRIES`` times,
        unless a streamed step already showed some of its text (what was shown cannot be
        taken back). Any other failure is the turn's ``AgentError``.
        """
        attempt = 0
        while True:
            try:
                if step_filter is not None and shown is not None:
                    return await self._generate_streamed(gen, step_filter, shown)
                return await self.inference.ask(gen, timeout=self.timeout)
            except ConstraintsUnsupported as exc:
                if gen.constraint is None:  # not ours to fix: the request had none
                    raise AgentError(self.name, f"inference failed: {exc}") from None
                if self.constrain:
                    self.constrain = False
                    log.warning(
                        "agent.constraints_unsupported",
                        agent=self.name,
                        reason=str(exc),
                        fallback="unconstrained, parse and retry",
                    )
                gen = msgspec.structs.replace(gen, constraint=None)
                if step_filter is not None:
                    step_filter.reset()
            except (EngineUnavailable, ActorStopped) as exc:  # stopped: its node was lost
                shown_any = step_filter is not None and step_filter.shown
                if attempt == ENGINE_RETRIES or shown_any:
                    reason = f"inference failed: {type(exc).__name__}: {exc}"
                    raise AgentError(self.name, reason) from None
                attempt += 1
                log.info("agent.engine_retry", agent=self.name, attempt=attempt, error=str(exc))
                if step_filter is not None:
                    step_filter.reset()  # held-back output of the failed attempt is void
            except AgentError:
                raise
            except Exception as exc:
                reason = f"inference failed: {type(exc).__name__}: {exc}"
                raise AgentError(self.name, reason) from None

    def _permissions(self) -> Permissions | None:
        return self.access.permissions_for(self.name)

    def _constraint(self, *, answer_only: bool = False, act: bool = False) -> JsonSchema | None:
        """The reply grammar for this agent's permissions now (``None``: unconstrained);
        ``answer_only``: the one that only lets the model answer (when it has a grammar);
        ``act``: the one without the answer (the step must call a tool or ask an agent)."""
        if not self.constrain:
            return None
        constraint = self.grammar.constraint(self._permissions(), answer=not act)
        return ANSWER_ONLY if answer_only and constraint is not None else constraint

    async def _generate_streamed(
        self, gen: Generate, step_filter: StepFilter, shown: Shown
    ) -> Completion:
        stream = await self.inference.ask(gen, timeout=self.timeout)
        if not isinstance(stream, CompletionStream):
            raise AgentError(self.name, f"inference answered {type(stream).__name__}")
        try:  # the whole step within the same time a non-streamed one gets
            async with asyncio.timeout(self.timeout):
                async for item in stream:
                    if isinstance(item, TokenDelta):
                        shown.show(step_filter.feed(item.text))
                    elif isinstance(item, Completion):
                        return item
        finally:  # cancelled or failed before the end: abort the request
            await stream.aclose()
        raise AgentError(self.name, f"inference stream {stream.request_id} ended early")

    async def _use_tool(self, tool: str, arguments: dict[str, Any]) -> str:
        """The tool's result as the model will read it (errors included, never raised)."""
        try:
            result = await self.call_tool(tool, arguments)
        except AgentError as exc:
            return f"{tool} error: {exc.reason}"
        if not result.ok:
            return f"{tool} error: {result.error}"
        return f"{tool} result: {json.dumps(result.value, default=str)}"

    async def _delegate(
        self, agent: str, question: str, via: tuple[str, ...], usage: _Usage
    ) -> str:
        """The other agent's answer as the model will read it (errors included), except
        ``HopLimitExceeded``: a delegation cycle ends the whole chain, the model cannot go on."""
        try:
            self.check(SendTo(agent=agent))
        except AgentError as exc:
            return f"agent {agent} error: {exc.reason}"
        ref = self.resolve_agent(agent) if self.resolve_agent is not None else None
        if ref is None:
            return f"agent {agent} error: there is no agent named {agent!r}"
        request = UserMessage(text=question, via=self.next_hop(via, agent))
        try:
            reply = await ref.ask(request, timeout=self.timeout)
        except HopLimitExceeded:
            raise
        except Exception as exc:
            return f"agent {agent} error: {exc}"
        if isinstance(reply, AgentReply):
            usage.add(reply.prompt_tokens, reply.completion_tokens)
            usage.model_turns += reply.model_turns
            usage.malformed += reply.malformed_turns
            usage.tools.extend(reply.tools_used)
            text = reply.text
        else:
            text = str(reply)
        return f"agent {agent} replied: {text}"

    async def _append(self, thread_id: str, message: NewMessage) -> None:
        await self._syscall(
            self.threads, Append(thread_id=thread_id, messages=[message]), "threads"
        )

    async def _syscall(self, ref: ActorRef, request: Any, what: str) -> Any:
        try:
            return await ref.ask(request, timeout=self.timeout)
        except AgentError:
            raise
        except Exception as exc:
            reason = f"{what} failed: {type(exc).__name__}: {exc}"
            raise AgentError(self.name, reason) from None

    def _said(self, text: str, call: dict[str, Any] | None = None) -> NewMessage:
        return NewMessage(role="assistant", content=text, agent=self.name, tool_calls=call)

    def _tool_message(self, content: str) -> NewMessage:
        return NewMessage(role="tool", content=content, agent=self.name)


class _Usage:
    """What a turn has used so far (its own model calls and its delegated turns): tokens,
    model outputs and how many of them were malformed, tools called."""

    __slots__ = ("prompt", "completion", "model_turns", "malformed", "tools")

    def __init__(self) -> None:
        self.prompt = 0
        self.completion = 0
        self.model_turns = 0
        self.malformed = 0
        self.tools: list[str] = []

    def add(self, prompt: int, completion: int) -> None:
        self.prompt += prompt
        self.completion += completion


def delegate_targets(config: AgentConfig) -> list[str]:
    """The agents ``config`` names as ones it may ask (patterns left out: no model can be
    told a name from them)."""
    return [a for a in (config.permissions.agents or ()) if not any(c in a for c in "*?[")]


def system_prompt(config: AgentConfig, tools: dict[str, str]) -> str:
    """The agent's own prompt, then the protocol: its tools and the agents it may ask."""
    protocol = protocol_prompt(tools, delegate_targets(config))
    return f"{config.system_prompt.strip()}\n\n{protocol}" if config.system_prompt else protocol


def correction(reason: str) -> str:
    """The note that asks the model to try again after malformed output."""
    return (
        f"Your last reply could not be used: {reason}. Reply again with exactly one JSON "
        'object — {"tool": ..., "arguments": {...}}, {"agent": ..., "message": ...} or '
        '{"answer": ...} — or with plain text as the final answer.'
    )
