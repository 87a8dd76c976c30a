"""The thread store: persisted conversation threads and prompts built to fit a context.

A thread is an ordered list of ``ThreadMessage`` (role, content, agent, tool calls, timestamp)
in SQLite. ``ThreadStore`` is the actor that serves ``CreateThread``, ``Append``, ``Read``,
``GetThread``, ``ListThreads`` and ``BuildPrompt``; its database calls run on one writer
thread, in order. A message larger than ``max_message_bytes`` (its content's UTF-8 plus its
tool calls' JSON; default ``MAX_MESSAGE_BYTES``, 1 MiB) is refused with ``MessageTooLarge``
naming its size and the limit, and nothing of that ``Append`` is stored.

Prompt building (``build_prompt``, a plain function the actor calls): the thread keeps every
message; the prompt is ``[system, summary note, the most recent turns that fit]``. When the
turns do not fit ``budget_tokens``, the older ones are folded into a running summary, made by
the ``summarize(messages, previous_summary) -> str`` callable given to the store (an LLM agent
passes one that asks the inference actor) and stored per thread, so each turn is summarized
once. A message that alone is larger than the space left is truncated with a marker, and so is
a summary that grew too long. Guarantee: the prompt's token count (by ``count_tokens``, default
a conservative ``len(text) // 3 + 4`` per message) never exceeds the budget; when the budget
cannot hold even the system prompt, the result is the system prompt cut to fit, or empty.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from actoros.core import Actor, Context

from ._protocol import refuse
from ._sqlite import SQLiteWorker, transaction
from .keyed_lock import KeyedLock

__all__ = [
    "Append",
    "BuildPrompt",
    "CreateThread",
    "GetThread",
    "ListThreads",
    "MAX_MESSAGE_BYTES",
    "MessageTooLarge",
    "NewMessage",
    "PromptMessage",
    "Read",
    "ThreadInfo",
    "ThreadMessage",
    "ThreadNotFound",
    "ThreadRequest",
    "ThreadStore",
    "build_prompt",
    "default_count_tokens",
    "truncate_to_fit",
]

MAX_MESSAGE_BYTES = 1 << 20  # the default cap of one stored message (services.threads)
TRUNCATION_MARKER = " …[truncated]"
SUMMARY_PREFIX = "Summary of the earlier conversation:\n"


class PromptMessage(msgspec.Struct, frozen=True):
    """One chat message of a prompt (same shape as the inference layer's ``ChatMessage``)."""

    role: str
    content: str


class NewMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A message to append; ``tool_calls`` is any JSON value (kept as given)."""

    role: str
    content: str
    agent: str | None = None
    tool_calls: Any = None


class ThreadMessage(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    role: str
    content: str
    agent: str | None = None
    tool_calls: Any = None
    created: float


class ThreadInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    title: str | None
    created: float
    updated: float
    messages: int
    owner: str | None = None


class CreateThread(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Reply: the new thread's id. ``owner``: who may use it, as the creator spells it (the
    gateway: its caller and agent); the store keeps it and ``GetThread`` reports it."""

    title: str | None = None
    owner: str | None = None


class GetThread(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Reply: the ``ThreadInfo`` of one thread, looked up by id (``ThreadNotFound`` if none)."""

    thread_id: str


class Append(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Reply: the ``seq`` numbers given to ``messages``, in order."""

    thread_id: str
    messages: list[NewMessage]


class Read(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Reply: messages in order; the last ``limit`` of those with ``seq < before``."""

    thread_id: str
    limit: int | None = None
    before: int | None = None


class ListThreads(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Reply: ``ThreadInfo`` of every thread, oldest first."""


class BuildPrompt(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Reply: a ``list[PromptMessage]`` that fits ``budget_tokens`` (see the module docstring).

    ``count_tokens(message) -> int`` counts one prompt message; None: the store's default.
    """

    thread_id: str
    system_prompt: str
    budget_tokens: int
    count_tokens: Callable[[PromptMessage], int] | None = None


ThreadRequest = CreateThread | GetThread | Append | Read | ListThreads | BuildPrompt
"""What ``ThreadStore`` takes."""


class ThreadNotFound(LookupError):
    pass


class MessageTooLarge(ValueError):
    """A message over the store's size limit; nothing of its ``Append`` was stored."""


def _check_size(message: NewMessage, limit: int) -> None:
    if len(message.content) <= limit // 4 and message.tool_calls is None:
        return  # at most four bytes a character: surely within the limit, no need to encode
    size = len(message.content.encode("utf-8", "surrogatepass"))
    if message.tool_calls is not None:
        size += len(msgspec.json.encode(message.tool_calls))
    if size > limit:
        raise MessageTooLarge(
            f"a thread message ({message.role}) of {size:,} bytes is over the limit of"
            f" {limit:,} bytes (services.threads.max_message_bytes)"
        )


CountTokens = Callable[[PromptMessage], int]
Summarize = Callable[[list[ThreadMessage], str | None], Awaitable[str]]


def default_count_tokens(message: PromptMessage) -> int:
    """A conservative estimate: a token per three characters, plus four for the framing."""
    return len(message.content) // 3 + 4


def truncate_to_fit(
    message: PromptMessage, max_tokens: int, count: CountTokens
) -> PromptMessage | None:
    """``message`` itself if it fits, else its longest head + marker that fits, else None."""
    if count(message) <= max_tokens:
        return message
    if count(PromptMessage(message.role, TRUNCATION_MARKER.strip())) > max_tokens:
        bare = PromptMessage(message.role, "")
        return bare if count(bare) <= max_tokens else None
    lo, hi = 0, len(message.content)  # lo always fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if (
            count(PromptMessage(message.role, message.content[:mid] + TRUNCATION_MARKER))
            <= max_tokens
        ):
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        return PromptMessage(message.role, TRUNCATION_MARKER.strip())
    return PromptMessage(message.role, message.content[:lo] + TRUNCATION_MARKER)


def _as_prompt(message: ThreadMessage) -> PromptMessage:
    return PromptMessage(message.role, message.content)


def _summary_note(summary: str) -> PromptMessage:
    return PromptMessage("system", SUMMARY_PREFIX + summary)


async def build_prompt(
    system_prompt: str,
    messages: Sequence[ThreadMessage],
    summary: str | None,
    budget_tokens: int,
    summarize: Summarize,
    count: CountTokens = default_count_tokens,
) -> tuple[list[PromptMessage], list[ThreadMessage], str | None]:
    """Fit ``[system, summary, recent turns]`` into ``budget_tokens``.

    ``messages`` are the turns not yet in ``summary``. Returns ``(prompt, folded, summary)``:
    the turns folded into the (new) summary by this call — the caller stores that — and the
    summary now in force.
    """
    system = truncate_to_fit(PromptMessage("system", system_prompt), budget_tokens, count)
    if system is None:
        return [], [], summary
    avail = budget_tokens - count(system)
    turns = [_as_prompt(m) for m in messages]
    costs = [count(t) for t in turns]
    note = _summary_note(summary) if summary else None
    if sum(costs) + (count(note) if note else 0) <= avail:
        return [system, *([note] if note else []), *turns], [], summary

    # Keep the newest turns that fit beside a reserve for the summary; fold the rest.
    reserve = avail // 3
    kept, used = 0, 0
    for cost in reversed(costs):
        if used + cost > avail - reserve:
            break
        kept, used = kept + 1, used + cost
    recent = turns[len(turns) - kept :]
    if kept == 0 and turns:  # the newest turn alone is too large: cut it, fold the rest
        newest = truncate_to_fit(turns[-1], avail - reserve, count)
        if newest is not None:
            recent, kept, used = [newest], 1, count(newest)
    folded = list(messages[: len(messages) - kept])
    if folded:
        summary = await summarize(folded, summary)
    prompt = [system]
    if summary:
        fitted = truncate_to_fit(_summary_note(summary), avail - used, count)
        if fitted is not None:
            prompt.append(fitted)
    prompt.extend(recent)
    return prompt, folded, summary


_SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    id TEXT PRIMARY KEY,
    title TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    summary TEXT,
    summary_upto INTEGER NOT NULL DEFAULT 0,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id TEXT NOT NULL REFERENCES threads (id),
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    agent TEXT,
    tool_calls TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_thread ON messages (thread_id, seq);
"""

_COLUMNS = "seq, role, content, agent, tool_calls, created"


def _row(row: tuple[Any, ...]) -> ThreadMessage:
    seq, role, content, agent, tool_calls, created = row
    calls = msgspec.json.decode(tool_calls) if tool_calls is not None else None
    return ThreadMessage(
        seq=seq, role=role, content=content, agent=agent, tool_calls=calls, created=created
    )


def _check(conn: sqlite3.Connection, thread_id: str) -> tuple[str | None, int]:
    row = conn.execute(
        "SELECT summary, summary_upto FROM threads WHERE id = ?", (thread_id,)
    ).fetchone()
    if row is None:
        raise ThreadNotFound(f"no thread {thread_id!r}")
    return row[0], row[1]


class ThreadStore(Actor):
    """The conversation-thread service (see the module docstring).

    ``path``: the SQLite file (``":memory:"`` for tests). ``summarize``: folds older turns into
    the running summary. ``count_tokens``: the default counter for ``BuildPrompt``.
    ``max_message_bytes``: the cap of one appended message (see the module docstring).
    """

    def __init__(
        self,
        summarize: Summarize,
        path: str = ":memory:",
        *,
        count_tokens: CountTokens = default_count_tokens,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self._summarize = summarize
        self._count = count_tokens
        self.max_message_bytes = max_message_bytes
        self._db = SQLiteWorker(path, schema=_SCHEMA)
        self._locks: KeyedLock[str] = KeyedLock()  # one build at a time per thread
        self._builds: set[asyncio.Task[list[PromptMessage]]] = set()

    async def on_start(self) -> None:
        await self._db.start()
        await self._db.call(_add_owner_column)

    async def on_stop(self) -> None:
        for task in list(self._builds):
            task.cancel()
        await self._db.close()

    async def receive(self, message: Any, ctx: Context) -> Any:
        try:
            match message:
                case CreateThread(title=title, owner=owner):
                    return await self._db.call(lambda conn: self._create(conn, title, owner))
                case GetThread(thread_id=thread_id):
                    return await self._db.call(lambda conn: _info(conn, thread_id))
                case Append(thread_id=thread_id, messages=messages):
                    limit = self.max_message_bytes
                    return await self._db.call(
                        lambda conn: self._append(conn, thread_id, messages, limit)
                    )
                case Read(thread_id=thread_id, limit=limit, before=before):
                    return await self._db.call(
                        lambda conn: self._read(conn, thread_id, limit, before)
                    )
                case ListThreads():
                    return await self._db.call(self._list)
                case BuildPrompt():
                    # Summarizing may take a model call: serve other requests meanwhile.
                    reply = ctx.defer_reply()
                    task = asyncio.ensure_future(self._build(message))
                    self._builds.add(task)

                    def done(t: asyncio.Task[Any]) -> None:
                        self._builds.discard(t)
                        if t.cancelled():
                            reply.fail(asyncio.CancelledError("thread store stopped"))
                        elif t.exception() is not None:
                            reply.fail(t.exception())  # type: ignore[arg-type]
                        else:
                            reply.resolve(t.result())

                    task.add_done_callback(done)
                    return None
                case _:  # the sender's error, not a reason to restart the store
                    refuse(message, ctx, "ThreadStore", ThreadRequest)
                    return None
        except (ThreadNotFound, MessageTooLarge) as exc:
            # the asker's mistake, not the store's fault: an error reply, no restart
            ctx.defer_reply().fail(exc)
            return None

    async def _build(self, request: BuildPrompt) -> list[PromptMessage]:
        thread_id = request.thread_id
        # One build per thread at a time, so a turn is folded into the summary once.
        async with self._locks.hold(thread_id):

            def load(conn: sqlite3.Connection) -> tuple[str | None, list[ThreadMessage]]:
                summary, upto = _check(conn, thread_id)
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM messages WHERE thread_id = ? AND seq > ? ORDER BY seq",
                    (thread_id, upto),
                )
                return summary, [_row(r) for r in rows]

            summary, messages = await self._db.call(load)
            prompt, folded, summary = await build_prompt(
                request.system_prompt,
                messages,
                summary,
                request.budget_tokens,
                self._summarize,
                request.count_tokens or self._count,
            )
            if folded:
                upto = folded[-1].seq

                def save(conn: sqlite3.Connection) -> None:
                    conn.execute(
                        "UPDATE threads SET summary = ?, summary_upto = ? WHERE id = ?",
                        (summary, upto, thread_id),
                    )

                await self._db.call(save)
        return prompt

    @staticmethod
    def _create(conn: sqlite3.Connection, title: str | None, owner: str | None) -> str:
        thread_id, now = uuid.uuid4().hex, time.time()
        conn.execute(
            "INSERT INTO threads (id, title, created, updated, owner) VALUES (?, ?, ?, ?, ?)",
            (thread_id, title, now, now, owner),
        )
        return thread_id

    @staticmethod
    def _append(
        conn: sqlite3.Connection, thread_id: str, messages: list[NewMessage], limit: int
    ) -> list[int]:
        for m in messages:  # on the store's thread: a big message is measured off the loop
            _check_size(m, limit)
        now = time.time()
        seqs: list[int] = []
        with transaction(conn):
            _check(conn, thread_id)
            for m in messages:
                calls = (
                    msgspec.json.encode(m.tool_calls).decode() if m.tool_calls is not None else None
                )
                cur = conn.execute(
                    "INSERT INTO messages (thread_id, role, content, agent, tool_calls, created)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (thread_id, m.role, m.content, m.agent, calls, now),
                )
                seqs.append(int(cur.lastrowid or 0))
            conn.execute("UPDATE threads SET updated = ? WHERE id = ?", (now, thread_id))
        return seqs

    @staticmethod
    def _read(
        conn: sqlite3.Connection, thread_id: str, limit: int | None, before: int | None
    ) -> list[ThreadMessage]:
        _check(conn, thread_id)
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE thread_id = ? AND seq < ?"
            " ORDER BY seq DESC LIMIT ?",
            (thread_id, before if before is not None else 2**62, -1 if limit is None else limit),
        ).fetchall()
        return [_row(r) for r in reversed(rows)]

    @staticmethod
    def _list(conn: sqlite3.Connection) -> list[ThreadInfo]:
        rows = conn.execute(f"SELECT {_INFO} FROM threads t ORDER BY t.created, t.rowid")
        return [_as_info(r) for r in rows]


_INFO = (
    "t.id, t.title, t.created, t.updated, t.owner,"
    " (SELECT COUNT(*) FROM messages m WHERE m.thread_id = t.id)"
)


def _as_info(r: tuple[Any, ...]) -> ThreadInfo:
    return ThreadInfo(id=r[0], title=r[1], created=r[2], updated=r[3], owner=r[4], messages=r[5])


def _info(conn: sqlite3.Connection, thread_id: str) -> ThreadInfo:
    """One thread's info by its primary key: a lookup, whatever the number of threads."""
    row = conn.execute(f"SELECT {_INFO} FROM threads t WHERE t.id = ?", (thread_id,)).fetchone()
    if row is None:
        raise ThreadNotFound(f"no thread {thread_id!r}")
    return _as_info(row)


def _add_owner_column(conn: sqlite3.Connection) -> None:
    """Threads files made before threads had owners get the column (their threads: none)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(threads)")}
    if "owner" not in columns:
        conn.execute("ALTER TABLE threads ADD COLUMN owner TEXT")
