"""Tools: the registry, user tools, and ToolService (built-ins, errors, timeouts, access)."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from actoros import Actor, ActorRef, ActorSystem, AskTimeout, Context
from actoros.kernel.access import AccessControl, Permissions
from actoros.kernel.kv import KVService
from actoros.kernel.tools import (
    BUILTIN_TOOLS,
    DEFAULT_TOOL_THREADS,
    CallTool,
    InvalidArguments,
    ListTools,
    Tool,
    ToolError,
    ToolRegistry,
    ToolResult,
    ToolService,
    UnknownTool,
    builtin_tools,
    load_user_tool,
)

pytestmark = pytest.mark.timeout(10)

OBJECT = {"type": "object"}


class Caller(Actor):
    """Asks on behalf of a named agent, so the service sees it as ``ctx.sender``."""

    async def receive(self, message: Any, ctx: Context) -> Any:
        target, request = message
        return await target.ask(request, timeout=None)


def test_a_tool_needs_an_object_schema_of_known_types_and_a_valid_name() -> None:
    with pytest.raises(ValueError, match="'object' schema"):
        Tool("t", "d", {"type": "string"}, print)
    with pytest.raises(ValueError, match="unknown type 'text'"):
        Tool("t", "d", {"type": "object", "properties": {"a": {"type": "text"}}}, print)
    with pytest.raises(ValueError, match="invalid tool name"):
        Tool("rm -rf", "d", OBJECT, print)


def test_registry_lists_schemas_and_rejects_unknown_tools_and_bad_arguments() -> None:
    registry = ToolRegistry.with_builtins()
    assert registry.names() == ["calculator", "clock"]
    assert [s["name"] for s in registry.schemas()] == ["calculator", "clock"]
    assert registry.schemas(["clock", "nope"])[0]["parameters"]["type"] == "object"
    assert "calculator" in registry.summaries()
    with pytest.raises(UnknownTool, match=r"unknown tool 'serch' \(known: calculator, clock\)"):
        registry.get("serch")
    with pytest.raises(InvalidArguments, match="missing required property 'expression'"):
        registry.validate("calculator", {})
    with pytest.raises(ValueError, match="already registered"):
        registry.register(builtin_tools()[0])
    assert set(BUILTIN_TOOLS) >= set(registry.names())


# -- user tools ---------------------------------------------------------------------------------


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    source = '''
        def shout(text: str, times: int = 1) -> str:
            """Upper-case some text.

            More detail that the prompt does not need.
            """
            return (text.upper() + " ") * times

        def raw(**kwargs):
            return kwargs

        raw.__tool_schema__ = {"type": "object", "properties": {"a": {"type": "number"}}}
        raw.__tool_description__ = "Echo the arguments."
        NOT_CALLABLE = 3
    '''
    (tmp_path / "my_user_tools.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_user_tools"


def test_load_user_tool_from_type_hints(user_module: str) -> None:
    tool = load_user_tool(f"{user_module}:shout")
    assert tool.name == "shout"
    assert tool.description == "Upper-case some text."
    assert tool.parameters["required"] == ["text"]
    tool.validate({"text": "hi", "times": 2})
    with pytest.raises(InvalidArguments):
        tool.validate({"text": "hi", "loud": True})
    assert tool.fn(text="hi") == "HI "


def test_load_user_tool_reads_tool_schema_attribute(user_module: str) -> None:
    tool = load_user_tool(f"{user_module}:raw", name="echo")
    assert (tool.name, tool.description) == ("echo", "Echo the arguments.")
    assert tool.parameters["properties"] == {"a": {"type": "number"}}


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("no_colon", "expected 'module:function'"),
        ("surely_not_a_module_xyz:f", "cannot import 'surely_not_a_module_xyz'"),
        ("my_user_tools:missing", "has no 'missing'"),
        ("my_user_tools:NOT_CALLABLE", "is not callable"),
    ],
)
def test_load_user_tool_errors_name_the_spec(user_module: str, spec: str, error: str) -> None:
    with pytest.raises(ToolError, match=error) as info:
        load_user_tool(spec)
    assert spec in str(info.value)


# -- the tool service ---------------------------------------------------------------------------


async def spawn_tools(system: ActorSystem, *extra: Tool, **kwargs: Any) -> ActorRef:
    kv = await system.spawn(KVService, None, name="kv")
    registry = ToolRegistry([*builtin_tools(kv), *extra])
    return await system.spawn(ToolService, registry, name="tools", **kwargs)


async def test_builtin_tools_through_the_service(system: ActorSystem) -> None:
    tools = await spawn_tools(system)
    result = await tools.ask(CallTool(tool="calculator", arguments={"expression": "6 * 7"}))
    assert result == ToolResult(ok=True, value=42)
    stamp = await tools.ask(CallTool(tool="clock", arguments={"utc_offset_hours": 2}))
    assert stamp.ok and stamp.value.endswith("+02:00")
    put = CallTool(tool="kv_put", arguments={"key": "k", "value": [1, "two"]})
    assert (await tools.ask(put)).ok
    got = await tools.ask(CallTool(tool="kv_get", arguments={"key": "k"}))
    assert got == ToolResult(ok=True, value=[1, "two"])
    schemas = await tools.ask(ListTools())
    assert [s["name"] for s in schemas] == ["calculator", "clock", "kv_get", "kv_put"]


async def test_refused_calls_are_error_replies(system: ActorSystem) -> None:
    tools = await spawn_tools(system)
    unknown = await tools.ask(CallTool(tool="serch", arguments={}))
    assert not unknown.ok and "unknown tool 'serch'" in unknown.error
    bad = await tools.ask(CallTool(tool="calculator", arguments={"expression": 7}))
    assert bad == ToolResult(
        ok=False,
        error="invalid arguments for 'calculator': arguments.expression: expected string, "
        "got integer",
    )
    unsafe = await tools.ask(CallTool(tool="calculator", arguments={"expression": "x.y"}))
    assert unsafe == ToolResult(ok=False, error="calculator: attribute access is not allowed")
    with pytest.raises(TypeError, match="cannot handle"):
        await tools.ask("hello")


async def test_a_raising_tool_is_an_error_reply_and_the_service_lives_on(
    system: ActorSystem,
) -> None:
    def explode() -> None:
        raise RuntimeError("boom")

    tools = await spawn_tools(system, Tool("explode", "fails", OBJECT, explode))
    result = await tools.ask(CallTool(tool="explode"))
    assert result == ToolResult(ok=False, error="explode failed: RuntimeError: boom")
    again = await tools.ask(CallTool(tool="calculator", arguments={"expression": "1+1"}))
    assert again.value == 2


async def test_sync_tools_run_in_a_worker_thread(system: ActorSystem) -> None:
    tool = Tool("where", "thread id", OBJECT, threading.get_ident)
    tools = await spawn_tools(system, tool)
    result = await tools.ask(CallTool(tool="where"))
    assert result.ok and result.value != threading.get_ident()


async def test_calls_run_concurrently(system: ActorSystem) -> None:
    gate = asyncio.Event()
    inside = 0
    both_inside = asyncio.Event()

    async def wait(n: int) -> int:
        nonlocal inside
        inside += 1
        if inside == 2:
            both_inside.set()
        await gate.wait()
        return n

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    tools = await spawn_tools(system, Tool("wait", "waits", schema, wait))
    asks = [
        asyncio.create_task(tools.ask(CallTool(tool="wait", arguments={"n": n}))) for n in (1, 2)
    ]
    await asyncio.wait_for(both_inside.wait(), 3)
    gate.set()
    assert [r.value for r in await asyncio.gather(*asks)] == [1, 2]


async def test_a_hanging_tool_times_out_on_the_system_clock(system: ActorSystem) -> None:
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    tools = await spawn_tools(system, Tool("hang", "never ends", OBJECT, hang, timeout=2.0))
    ask = asyncio.create_task(tools.ask(CallTool(tool="hang"), timeout=None))
    await asyncio.wait_for(started.wait(), 3)
    system.clock.advance(2.0)  # type: ignore[attr-defined]
    result = await asyncio.wait_for(ask, 3)
    assert result == ToolResult(ok=False, error="tool 'hang' timed out after 2 s")


async def test_an_async_tool_is_cancelled_when_its_asker_gives_up(system: ActorSystem) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def hang() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    tools = await spawn_tools(system, Tool("hang", "never ends", OBJECT, hang))
    ask = asyncio.create_task(tools.ask(CallTool(tool="hang"), timeout=1.0))
    await asyncio.wait_for(started.wait(), 3)
    system.clock.advance(1.0)  # type: ignore[attr-defined]
    with pytest.raises(AskTimeout):
        await ask
    await asyncio.wait_for(cancelled.wait(), 3)


async def test_permission_denial_is_an_error_reply_and_an_audit_event(
    system: ActorSystem,
) -> None:
    alice = await system.spawn(Caller, name="alice")
    bob = await system.spawn(Caller, name="bob")
    access = AccessControl(
        {"alice": Permissions(tools=frozenset({"calculator"})), "bob": Permissions()}
    )
    tools = await spawn_tools(system, access=access, agents={alice: "alice", "/bob": "bob"})
    calc = CallTool(tool="calculator", arguments={"expression": "1 + 2"})

    assert await alice.ask((tools, calc)) == ToolResult(ok=True, value=3)
    with capture_logs() as logs:
        denied = await bob.ask((tools, calc))
    assert denied == ToolResult(
        ok=False, error="permission denied: agent 'bob' may not call tool 'calculator'"
    )
    audit = [e for e in logs if e["event"] == "audit.denied"]
    assert [(e["agent"], e["syscall"], e["target"]) for e in audit] == [
        ("bob", "call_tool", "calculator")
    ]
    # asked from outside any actor: nobody to name, so refused too
    anonymous = await tools.ask(calc)
    assert anonymous.error == "permission denied: unknown caller may not call_tool 'calculator'"
    # the service is unharmed
    assert (await alice.ask((tools, calc))).ok


# -- isolation: user tools cannot starve the kernel or take it down (issue 9, items 5 and 6) ------


class Entered:
    """Counts entries into a tool from any thread, for the loop to await without sleeping."""

    def __init__(self, expected: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.count = 0
        self.expected = expected
        self.all_in = asyncio.Event()

    def enter(self) -> None:  # called in the tool's thread
        self.loop.call_soon_threadsafe(self._bump)

    def _bump(self) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.all_in.set()


@pytest.mark.timeout(20)
async def test_hung_sync_tools_starve_neither_builtins_nor_kv_nor_shutdown(
    system: ActorSystem,
) -> None:
    # The loop's default executor is small here, as on a two-core machine (6 threads): the old
    # service ran sync tools there, and so did the kv store, so hung tools starved both.
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=2))
    release = threading.Event()
    entered = Entered(DEFAULT_TOOL_THREADS)

    def hang() -> None:
        entered.enter()
        release.wait()  # "forever": released after the system is gone

    tools = await spawn_tools(system, Tool("hang", "never ends", OBJECT, hang, timeout=2.0))
    hung = [
        asyncio.create_task(tools.ask(CallTool(tool="hang"), timeout=None))
        for _ in range(DEFAULT_TOOL_THREADS + 2)  # the pool is full and two calls wait
    ]
    try:
        await asyncio.wait_for(entered.all_in.wait(), 5)
        calc = CallTool(tool="calculator", arguments={"expression": "1+1"})
        assert await asyncio.wait_for(tools.ask(calc), 5) == ToolResult(ok=True, value=2)
        put = CallTool(tool="kv_put", arguments={"key": "k", "value": 7})
        assert (await asyncio.wait_for(tools.ask(put), 5)).ok
        get = CallTool(tool="kv_get", arguments={"key": "k"})
        assert await asyncio.wait_for(tools.ask(get), 5) == ToolResult(ok=True, value=7)

        system.clock.advance(2.0)  # type: ignore[attr-defined]
        errors = [r.error for r in await asyncio.wait_for(asyncio.gather(*hung), 5)]
        # the two that waited get the places of the hung ones (ToolThreads' max_hung) at the
        # same deadline, so each of them either never started or hangs too
        assert all(e.startswith("tool 'hang' timed out after 2 s") for e in errors), errors
        assert DEFAULT_TOOL_THREADS <= entered.count <= DEFAULT_TOOL_THREADS + 2

        with capture_logs() as logs:  # the hung threads are abandoned, not waited for
            await asyncio.wait_for(system.shutdown(timeout=5.0), 10)
        assert not [e for e in logs if "timeout" in e["event"]]
    finally:
        release.set()


@pytest.mark.parametrize(
    "raised",
    [
        SystemExit(3),
        KeyboardInterrupt(),
        GeneratorExit(),
        StopIteration(),
        asyncio.CancelledError(),
    ],
    ids=lambda exc: type(exc).__name__,
)
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_any_base_exception_from_a_tool_is_that_calls_error_reply(
    system: ActorSystem, raised: BaseException, kind: str
) -> None:
    def sync_tool() -> None:
        raise raised

    async def async_tool() -> None:
        raise raised

    bad = Tool("bad", "raises", OBJECT, sync_tool if kind == "sync" else async_tool)
    where = Tool("where", "thread id", OBJECT, threading.get_ident)
    # one thread: the same worker must survive each exception and serve the next call
    tools = await spawn_tools(system, bad, where, threads=1)
    name = type(raised).__name__
    detail = f"{name}: {raised}" if str(raised) else name
    if kind == "async" and isinstance(raised, StopIteration):  # PEP 479 turns it into this
        detail = "RuntimeError: coroutine raised StopIteration"
    for _ in range(3):
        result = await asyncio.wait_for(tools.ask(CallTool(tool="bad")), 5)
        assert result == ToolResult(ok=False, error=f"bad failed: {detail}")
    assert (await asyncio.wait_for(tools.ask(CallTool(tool="where")), 5)).ok
    calc = CallTool(tool="calculator", arguments={"expression": "2*3"})
    assert (await tools.ask(calc)).value == 6
