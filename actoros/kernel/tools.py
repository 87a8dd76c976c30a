"""Tools: Python callables with JSON-schema'd arguments, and the service that runs them.

A ``Tool`` is a name, a description, a JSON schema of its arguments and a function. A
``ToolRegistry`` holds a system's tools, writes their schemas for a model's prompt and checks
arguments against a schema before anything runs (``schema.py``: the small JSON schema subset
tools use). ``load_user_tool("module:function")`` turns a user's function into a tool, its
schema taken from ``__tool_schema__`` or derived from its type hints.

``ToolService`` is the kernel actor that runs ``CallTool`` asks. It checks the caller's
permissions (``AccessControl``), the tool's existence and the arguments, then runs the function
with a timeout on the system's clock: async ones on the loop, the instant built-ins (``inline``:
calculator, clock) on the loop too, and every other sync function in the service's own bounded
pool of daemon threads (``ToolThreads``), which no kernel service shares — a user tool that
hangs can occupy that pool, never the key-value store, the thread store or the journal.
Every outcome is a ``ToolResult``: a refusal, a bad argument, a tool that raises anything
(``BaseException`` included: ``sys.exit()``, ``KeyboardInterrupt``) or hangs is that call's
error reply, never a crash of the service or of the process, and the service runs many calls
at once. Python cannot kill a thread: a sync call past its deadline is answered at the deadline
and its thread is abandoned until the function returns; stopping the service never waits for it.

Built-ins: ``calculator`` (safe arithmetic, see ``calculator.py``), ``clock`` and, given a
``KVService``, ``kv_get`` / ``kv_put``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec
import structlog

from actoros.core import Actor, ActorRef, Context

from ._protocol import refuse
from ._tool_threads import Escaped, ThreadCall, ToolThreads
from .access import AccessControl, CallTool, PermissionDenied, caller_name
from .calculator import CalculatorError, calculate
from .kv import KVGet, KVPut, ValueTooLarge
from .schema import SchemaError, check_schema, derive_schema, schema_errors

__all__ = [
    "BUILTIN_TOOLS",
    "CallTool",
    "DEFAULT_TOOL_THREADS",
    "InvalidArguments",
    "ListTools",
    "Tool",
    "ToolError",
    "ToolRegistry",
    "ToolRequest",
    "ToolResult",
    "ToolService",
    "UnknownTool",
    "builtin_tools",
    "kv_tools",
    "load_user_tool",
]

log = structlog.get_logger("actoros.kernel.tools")

#: The names of the built-in tools (``kv_*`` need a ``KVService``).
BUILTIN_TOOLS = ("calculator", "clock", "kv_get", "kv_put")

#: Threads of a ``ToolService``'s pool for sync user tools (``services.tools.threads``).
DEFAULT_TOOL_THREADS = 8


class ToolError(Exception):
    """A tool could not do what it was asked; the message is shown to the agent as is."""


class UnknownTool(ToolError, KeyError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(f"unknown tool {name!r} (known: {', '.join(self.known) or 'none'})")

    def __str__(self) -> str:  # KeyError would add quotes
        return str(self.args[0])


class InvalidArguments(ToolError):
    """Arguments that do not match the tool's schema; ``errors`` has one line per problem."""

    def __init__(self, tool: str, errors: list[str]) -> None:
        self.tool = tool
        self.errors = errors
        super().__init__(f"invalid arguments for {tool!r}: " + "; ".join(errors))


class Tool(msgspec.Struct, frozen=True):
    """A callable an agent may use: ``fn(**arguments)``, sync or async.

    ``parameters`` is the JSON schema of the arguments (an ``object`` schema). ``timeout``
    overrides the service's default limit for this tool (seconds). ``inline``: a sync ``fn``
    that is instant and cannot block (the calculator, the clock) is called on the event loop,
    without a thread; leave it False for anything that may wait or loop (user tools never set it).
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    timeout: float | None = None
    inline: bool = False

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "a").replace(".", "a").isalnum():
            raise ValueError(f"invalid tool name {self.name!r} (letters, digits, '_', '.')")
        if self.parameters.get("type") != "object":
            raise ValueError(f"tool {self.name!r}: parameters must be an 'object' schema")
        check_schema(self.parameters)
        if not callable(self.fn):
            raise ValueError(f"tool {self.name!r}: fn is not callable")

    def validate(self, arguments: Any) -> None:
        """Raise ``InvalidArguments`` unless ``arguments`` match ``parameters``."""
        errors = schema_errors(self.parameters, arguments)
        if errors:
            raise InvalidArguments(self.name, errors)

    def schema(self) -> dict[str, Any]:
        """The tool as a model sees it: name, description, parameters."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


class ToolRegistry:
    """The tools of one system, by name (registries belong to a system, never to the process)."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    @classmethod
    def with_builtins(cls, kv: ActorRef | None = None) -> ToolRegistry:
        """A registry holding the built-in tools (``kv_*`` only when ``kv`` is given)."""
        return cls(builtin_tools(kv))

    def register(self, tool: Tool, *, replace: bool = False) -> Tool:
        if tool.name in self._tools and not replace:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool:
        """The tool ``name``; ``UnknownTool`` (naming the known ones) if there is none."""
        tool = self._tools.get(name)
        if tool is None:
            raise UnknownTool(name, self._tools)
        return tool

    def names(self) -> list[str]:
        return sorted(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def validate(self, name: str, arguments: Any) -> Tool:
        """The tool ``name`` if ``arguments`` pass; else ``UnknownTool``/``InvalidArguments``."""
        tool = self.get(name)
        tool.validate(arguments)
        return tool

    def schemas(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Name, description and parameter schema of each tool (all, or those in ``names``),
        sorted by name: what an LLM prompt lists."""
        chosen = self.names() if names is None else sorted(set(names) & set(self._tools))
        return [self._tools[name].schema() for name in chosen]

    def summaries(self, names: Iterable[str] | None = None) -> dict[str, str]:
        """``{name: "description; arguments: {json schema}"}``, compact for a small model."""
        return {
            s["name"]: f"{s['description']}; arguments: "
            + msgspec.json.encode(s["parameters"]).decode()
            for s in self.schemas(names)
        }


def load_user_tool(spec: str, *, name: str | None = None) -> Tool:
    """Import ``"package.module:function"`` and make it a ``Tool``.

    Its schema is the function's ``__tool_schema__`` attribute when it has one, else derived
    from its type hints (``derive_schema``); its description is ``__tool_description__`` or the
    first paragraph of its docstring. Any problem is a ``ToolError`` naming ``spec``.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ToolError(f"tool {spec!r}: expected 'module:function'")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ToolError(f"tool {spec!r}: cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ToolError(f"tool {spec!r}: {module_name!r} has no {attr!r}") from None
    if not callable(target):
        raise ToolError(f"tool {spec!r}: {attr!r} is not callable")
    try:
        schema = getattr(target, "__tool_schema__", None) or derive_schema(target)
    except SchemaError as exc:
        raise ToolError(f"tool {spec!r}: {exc}") from exc
    doc = inspect.getdoc(target) or ""
    description = getattr(target, "__tool_description__", None) or doc.split("\n\n")[0]
    try:
        return Tool(
            name or attr.rpartition(".")[2],
            " ".join(description.split()) or attr,
            dict(schema),
            target,
            timeout=getattr(target, "__tool_timeout__", None),
        )
    except ValueError as exc:
        raise ToolError(f"tool {spec!r}: {exc}") from exc


def _calculator(expression: str) -> int | float:
    try:
        return calculate(expression)
    except CalculatorError as exc:  # the agent's mistake, said back to it as is
        raise ToolError(str(exc)) from None


def _clock(utc_offset_hours: float = 0) -> str:
    if not -24 < utc_offset_hours < 24:
        raise ToolError("utc_offset_hours must be between -24 and 24")
    zone = dt.timezone(dt.timedelta(hours=utc_offset_hours))
    return dt.datetime.now(dt.UTC).astimezone(zone).isoformat(timespec="seconds")


CALCULATOR = Tool(
    "calculator",
    "Evaluate an arithmetic expression: numbers, + - * / // % **, parentheses, "
    "pi, e, abs, max, min, round, sqrt.",
    {
        "type": "object",
        # no example expression: small models copy it instead of computing the task's numbers
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
        "additionalProperties": False,
    },
    _calculator,
    inline=True,  # bounded by calculator.py's caps: microseconds
)

CLOCK = Tool(
    "clock",
    "The current date and time (ISO 8601), in UTC or at a UTC offset in hours.",
    {
        "type": "object",
        "properties": {"utc_offset_hours": {"type": "number", "default": 0}},
        "additionalProperties": False,
    },
    _clock,
    inline=True,
)


def kv_tools(kv: ActorRef, *, timeout: float = 5.0) -> list[Tool]:
    """``kv_get`` and ``kv_put`` on the system's ``KVService`` at ``kv``."""

    async def kv_get(key: str, namespace: str = "default") -> Any:
        return await kv.ask(KVGet(key=key, namespace=namespace), timeout=timeout)

    async def kv_put(key: str, value: Any, namespace: str = "default") -> str:
        try:
            await kv.ask(KVPut(key=key, value=value, namespace=namespace), timeout=timeout)
        except ValueTooLarge as exc:  # the agent's mistake, said back to it as is
            raise ToolError(str(exc)) from None
        return "ok"

    key = {"type": "string"}
    namespace = {"type": "string", "default": "default"}
    return [
        Tool(
            "kv_get",
            "Read the value stored under a key (null when there is none).",
            {
                "type": "object",
                "properties": {"key": key, "namespace": namespace},
                "required": ["key"],
                "additionalProperties": False,
            },
            kv_get,
        ),
        Tool(
            "kv_put",
            "Store a JSON value under a key.",
            {
                "type": "object",
                "properties": {"key": key, "value": {}, "namespace": namespace},
                "required": ["key", "value"],
                "additionalProperties": False,
            },
            kv_put,
        ),
    ]


def builtin_tools(kv: ActorRef | None = None) -> list[Tool]:
    """``calculator`` and ``clock``, plus ``kv_get``/``kv_put`` when ``kv`` is given."""
    return [CALCULATOR, CLOCK, *(kv_tools(kv) if kv is not None else ())]


class ToolResult(msgspec.Struct, frozen=True, kw_only=True):
    """The reply to ``CallTool``: ``ok`` and ``value``, or not ``ok`` and ``error``."""

    ok: bool
    value: Any = None
    error: str | None = None


class ListTools(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Reply: ``ToolRegistry.schemas()`` of the service's tools."""


ToolRequest = CallTool | ListTools
"""What ``ToolService`` takes."""


class ToolService(Actor):
    """Runs ``CallTool`` asks (``/kernel/tools``); every reply is a ``ToolResult``.

    ``access``: when given, the caller (``ctx.sender``, named through ``agents``: a mapping
    of ``ActorRef`` or actor path to agent name) must be allowed the tool, else the reply is
    ``ToolResult(ok=False, error="permission denied: ...")`` and an audit event is logged.
    ``agents`` is read at every call, so the kernel may fill it as agents start.
    ``timeout``: seconds (on the system's clock) a call may run unless its tool sets its own,
    counted from the ask, so a call still waiting for a free thread is answered at its deadline
    too. ``threads``: the size of the service's own pool for sync tools (see the module
    docstring); each incarnation has a fresh pool, and stopping abandons the old one's threads.

    Calls run concurrently: the service answers each one when its function finishes. If the
    asker gives up (its ask timed out), an async tool is cancelled and a sync call that has not
    started yet never starts.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        access: AccessControl | None = None,
        agents: Mapping[Any, str] | None = None,
        timeout: float = 30.0,
        threads: int = DEFAULT_TOOL_THREADS,
    ) -> None:
        self.registry = registry
        self.access = access
        self.agents: Mapping[Any, str] = agents if agents is not None else {}
        self.timeout = timeout
        self.threads = ToolThreads(threads)
        self._running: set[asyncio.Task[ToolResult]] = set()

    async def on_stop(self) -> None:
        for task in list(self._running):
            task.cancel()
        self.threads.shutdown()

    def receive(self, message: Any, ctx: Context) -> Any:
        match message:
            case CallTool():
                return self._call(message, ctx)
            case ListTools():
                return self.registry.schemas()
            case _:  # the sender's error: the service carries on
                refuse(message, ctx, "ToolService", ToolRequest)
                return None

    def _call(self, call: CallTool, ctx: Context) -> ToolResult | None:
        """A ``ToolResult`` at once for a refused call; else start it and reply later."""
        try:
            if self.access is not None:
                self.access.check(caller_name(self.agents, ctx.sender), call)
            tool = self.registry.validate(call.tool, call.arguments)
        except (PermissionDenied, ToolError) as exc:
            log.info("tool.refused", tool=call.tool, error=str(exc))
            return ToolResult(ok=False, error=str(exc))
        reply = ctx.defer_reply()
        blocking = not (tool.inline or inspect.iscoroutinefunction(tool.fn))
        work = self.threads.run(tool.fn, call.arguments) if blocking else None
        task = asyncio.create_task(_invoke(tool, call.arguments, work))
        self._running.add(task)
        timeout = tool.timeout if tool.timeout is not None else self.timeout
        timed_out = False

        def on_timeout() -> None:
            nonlocal timed_out
            if not task.done():
                timed_out = True
                task.cancel()

        timer = ctx.system.clock.call_later(timeout, on_timeout)

        def finished(done: asyncio.Task[ToolResult]) -> None:
            timer.cancel()
            self._running.discard(done)
            if done.cancelled():
                result = self._cancelled(tool.name, timed_out, timeout, work)
            else:
                result = done.result()
            if not result.ok:
                log.warning("tool.failed", tool=tool.name, error=result.error)
            reply.resolve(result)

        def abandoned() -> None:  # the asker gave up (its ask timed out): stop the work
            if not task.done():
                task.cancel()

        task.add_done_callback(finished)
        if reply.expected:
            reply.on_done(abandoned)
        return None

    def _cancelled(
        self, name: str, timed_out: bool, timeout: float, work: ThreadCall | None
    ) -> ToolResult:
        if not timed_out:
            return ToolResult(ok=False, error=f"tool {name!r} was cancelled")
        error = f"tool {name!r} timed out after {timeout:g} s"
        if work is not None and not work.started:
            error += (
                f" waiting for a free tool thread (all {self.threads.size} busy;"
                " raise services.tools.threads or fix the tools that hang)"
            )
        return ToolResult(ok=False, error=error)


async def _invoke(tool: Tool, arguments: dict[str, Any], work: ThreadCall | None) -> ToolResult:
    """Run the call to its ``ToolResult``: whatever the tool raises is this call's error.

    Only the cancellation of the call itself (its deadline, its asker gone, the service
    stopping) propagates; a ``CancelledError`` the tool raises on its own is its error.
    """
    try:
        result = await work.future if work is not None else tool.fn(**arguments)
        if inspect.isawaitable(result):  # an async tool, or e.g. a partial of one
            result = await result
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return _failure(tool.name, exc)
    except ToolError as exc:
        return ToolResult(ok=False, error=f"{tool.name}: {exc}")
    except Escaped as escaped:
        return _failure(tool.name, escaped.exc)
    except BaseException as exc:  # SystemExit, KeyboardInterrupt...: the call's, not the run's
        return _failure(tool.name, exc)
    return ToolResult(ok=True, value=result)


def _failure(name: str, exc: BaseException) -> ToolResult:
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return ToolResult(ok=False, error=f"{name} failed: {detail}")
