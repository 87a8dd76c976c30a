"""``chat``: ``actoros run --chat AGENT`` — one conversation thread with one agent.

The system starts without its workload; each line read is a turn, sent as a streaming
``UserMessage`` in the same thread, and the reply is written piece by piece as the agent
produces it (an LLM agent's tokens as the model generates them). Input is read in a daemon
thread, so a blocked read never holds up the exit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import msgspec

from actoros.agents import AgentDelta, AgentError, AgentReply, AgentStream, UserMessage
from actoros.config import Config
from actoros.core import ActorRef

from .assembly import start_system
from .host import config_problem

__all__ = ["CHAT_TIMEOUT", "chat"]

CHAT_TIMEOUT = 300.0
"""Seconds a chat turn may take."""


async def chat(
    config: Config,
    agent: str,
    *,
    read_line: Callable[[], str],
    write: Callable[[str], None],
    stop_event: asyncio.Event | None = None,
) -> None:
    """An interactive chat with ``agent``: each line read is a turn of one conversation
    thread. The reply is streamed: ``write`` gets the agent's name as a prefix, then each
    piece of text as the agent produces it, then a newline; a failed turn writes
    ``[error] ...``. Ends at the end of input or when ``stop_event`` is set (a turn still
    running is cancelled). An unknown agent is a ``ConfigError``, said before anything (a
    model) starts."""
    names = sorted(a.name for a in config.agents)
    if agent not in names:
        known = ", ".join(names) or "none"
        raise config_problem("--chat", f"unknown agent {agent!r} (known: {known})")
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def reader() -> None:  # a daemon thread: a blocked read must not hold up the exit
        while True:
            line = read_line()
            loop.call_soon_threadsafe(lines.put_nowait, line)
            if not line:
                return

    system = await start_system(msgspec.structs.replace(config, workload=None))
    try:
        system.open.set()
        ref = system.agent(agent)
        assert ref is not None
        threading.Thread(target=reader, name="actoros-chat-input", daemon=True).start()
        thread_id: str | None = None
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while True:
                next_line = asyncio.ensure_future(lines.get())
                await asyncio.wait({next_line, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not next_line.done():
                    next_line.cancel()
                    break
                line = next_line.result()
                if not line:
                    break
                text = line.strip()
                if not text:
                    continue
                message = UserMessage(text=text, thread_id=thread_id, stream=True)
                turn = asyncio.ensure_future(_turn(ref, message, write))
                await asyncio.wait({turn, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not turn.done():  # stopped mid-turn: cancelling it closes the stream
                    turn.cancel()
                    await asyncio.gather(turn, return_exceptions=True)
                    break
                thread_id = turn.result() or thread_id
        finally:
            stopped.cancel()
    finally:
        await system.shutdown()


async def _turn(ref: ActorRef, message: UserMessage, write: Callable[[str], None]) -> str | None:
    """One streamed chat turn written as it comes; the reply's thread id (``None`` on error)."""
    started = False
    try:
        async with asyncio.timeout(CHAT_TIMEOUT):
            stream = await ref.ask(message, timeout=CHAT_TIMEOUT)
            if not isinstance(stream, AgentStream):
                raise AgentError(ref.name, f"answered {type(stream).__name__}, not a stream")
            async with stream:
                write(f"{stream.agent}: ")
                started = True
                async for item in stream:
                    if isinstance(item, AgentDelta):
                        write(item.text)
                    elif isinstance(item, AgentReply):
                        write("\n")
                        return item.thread_id
    except Exception as exc:
        error = f"no reply within {CHAT_TIMEOUT:g} s" if isinstance(exc, TimeoutError) else exc
        write(("\n" if started else "") + f"[error] {error}\n")
    return None
