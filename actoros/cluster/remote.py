"""Refs to actors on other nodes, and the links that carry their messages.

A ``RemoteRef`` is an ``ActorRef`` whose cell is a ``RemoteCell``: the same ``tell``, ``ask``
(timeouts on this node's clock), ``stop`` and ``ctx.watch`` as a local ref, carried as frames
(``wire.py``) over the ``Link`` to the actor's node. A link batches every frame of one loop turn
into one Ray call (``deliver``), keeps at most ``MAX_IN_FLIGHT`` calls outstanding (more frames
wait and join the next batch), and numbers its batches so the receiver applies them in order.

When a link fails (a call to the node raises, or its heartbeat goes unanswered), the node is
lost: asks waiting on it raise ``ActorStopped``, messages not yet acknowledged become dead
letters, and watchers of its actors get ``Terminated`` — nothing hangs, nothing vanishes.

Streamed replies. When a remote ask is answered with a ``ReplyStream`` (``CompletionStream``,
``AgentStream``, ...), the stream cannot cross: the answering node keeps it and its link runs
a relay task that reads it (``async for``; for a ``CompletionStream`` that reader is what
pulls the generation) and sends each item, then the final value or the error, as frames of
the ask's ``corr`` — batched per loop turn with everything else, in order. The asker's ask
resolves with a local instance of the same class, built as ``cls(label, on_close)``: a
subclass that is to cross must take ``(str, on_close)`` as its ``__init__``, as
``CompletionStream(request_id, on_close)`` and ``AgentStream(agent, on_close)`` do; items
arrive in it by ``_push``, the end by ``_end``. Closing it before its end sends ``CLOSE``:
the relay stops and ``aclose()``s the real stream (a generation is aborted). The asker holds
it weakly where the class allows, so a dropped ``CompletionStream`` closes as a local one
does. A lost answering node ends the stream with ``NodeUnreachable``; a lost asker closes
the real one.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from actoros.core import ActorRef, ActorStopped, Terminated
from actoros.core.stream import ReplyStream

from . import wire
from .wire import Frame, NodeUnreachable, NotPortable

if TYPE_CHECKING:
    from .node import NodeRuntime

log = structlog.get_logger("actoros.cluster")

MAX_IN_FLIGHT = 8
"""Batches a link keeps outstanding; beyond that, frames queue and leave as one batch."""

PIGGYBACK_TURNS = 2
"""Loop turns a node lets pass after applying a batch before it returns, as the call's result,
the frames it has for the sender by then (the replies of quick asks among them): a quick
ask costs one Ray round trip, not two one-way calls."""

_RUNNING = "running"
_STOPPED = "stopped"


class _Watchers(set):  # type: ignore[type-arg]
    """A remote actor's local watchers; the first one makes this node watch it over there."""

    __slots__ = ("_cell",)

    def __init__(self, cell: RemoteCell) -> None:
        super().__init__()
        self._cell = cell

    def add(self, watcher: Any) -> None:
        first = not self
        super().add(watcher)
        if first:
            self._cell._send_control(wire.WATCH)

    def discard(self, watcher: Any) -> None:
        if watcher in self:
            super().discard(watcher)
            if not self:
                self._cell._send_control(wire.UNWATCH)


class RemoteRef(ActorRef):
    """A ref to an actor on another node (see the module docstring)."""

    __slots__ = ()

    _cell: RemoteCell  # type: ignore[assignment]

    @property
    def node(self) -> str:
        return self._cell.node

    @property
    def node_lost(self) -> bool:
        """Whether this ref stopped working because its node was lost (a restarted node's
        groups are new actors: look them up again)."""
        return self._cell.node_lost

    def __repr__(self) -> str:
        return f"<ActorRef {self._cell.path} on {self._cell.node}>"

    async def stop(self) -> None:
        """Stop the remote actor for good and wait until it is gone (or its node is lost)."""
        await self._cell.stop_remote()


class RemoteCell:
    """What a ``RemoteRef`` stands on: just enough of ``ActorCell`` for ``ActorRef``'s methods
    and ``ctx.watch``, with every message sent over the link to ``node``."""

    __slots__ = (
        "_system",
        "_runtime",
        "node",
        "path",
        "_name",
        "ref",
        "_state",
        "_task",
        "_watchers",
        "_exit_reason",
        "node_lost",
        "__weakref__",
    )

    def __init__(self, runtime: NodeRuntime, node: str, path: str, stopped: str | None = None):
        self._runtime = runtime
        self._system = runtime.system
        self.node = node
        self.path = path
        self._name = path.rsplit("/", 1)[-1]
        self.ref = RemoteRef(self)  # type: ignore[arg-type]
        self._state = _RUNNING if stopped is None else _STOPPED
        self._task = None  # ActorRef.ask compares it with the asking task
        self._watchers: _Watchers | None = _Watchers(self)
        self._exit_reason = stopped
        self.node_lost = False  # stopped because its node was lost (not by itself)

    @property
    def _dead(self) -> bool:
        return self._state == _STOPPED

    def __repr__(self) -> str:
        return f"<RemoteCell {self.path} on {self.node}>"

    def _link(self) -> Link | None:
        link = self._runtime.links.get(self.node)
        return link if link is not None and link.lost is None else None

    def _post(self, envelope: tuple[Any, ActorRef | None, asyncio.Future[Any] | None]) -> None:
        message, sender, fut = envelope
        link = self._link() if self._state == _RUNNING else None
        if link is None:
            self._undeliverable(envelope, self._exit_reason or "recipient stopped")
            return
        tag, body = link.codec.body(message)  # NotPortable reaches the sender here
        corr = link.expect(fut) if fut is not None else 0
        link.send(Frame(wire.MSG, self.path, corr, tag, body, sender), (message, self.ref))

    def _undeliverable(self, envelope: tuple[Any, Any, Any], reason: str) -> None:
        message, _, fut = envelope
        if fut is not None and not fut.done():
            fut.set_exception(
                ActorStopped(
                    f"{self.path} on node {self.node} stopped before replying to "
                    f"{type(message).__name__} ({reason})"
                )
            )
        self._system.dead_letter(message, self.ref, reason)

    def _send_control(self, kind: int) -> None:
        link = self._link() if self._state == _RUNNING else None
        if link is not None:
            link.send(Frame(kind, self.path))

    async def stop_remote(self) -> None:
        link = self._link() if self._state == _RUNNING else None
        if link is None:
            return
        fut = self._system._loop.create_future()
        link.send(Frame(wire.STOP, self.path, link.expect(fut)))
        try:
            await fut
        except ActorStopped:  # its node was lost meanwhile: it is gone either way
            pass
        self.terminate("stopped")

    def terminate(self, reason: str) -> None:
        """The actor stopped for good, or its node is lost: tell the watchers, once."""
        if self._state == _STOPPED:
            return
        self._state = _STOPPED
        self._exit_reason = reason
        self._runtime.forget(self)
        watchers, self._watchers = self._watchers, None
        if watchers:
            terminated = Terminated(self.ref, reason)
            for watcher in list(watchers):
                if watcher._watching is not None:
                    watcher._watching.discard(self)
                watcher._post_sys(terminated)


class NodeWatcher:
    """Stands in a local actor's watcher set for a whole remote node: its ``Terminated``
    crosses back as one ``TERMINATED`` frame; the remote node tells its own watchers."""

    __slots__ = ("_link", "path", "_watching")

    def __init__(self, link: Link, path: str) -> None:
        self._link = link
        self.path = path
        self._watching = None  # finalize() reads it on every watcher

    def _post_sys(self, message: Any) -> None:
        if isinstance(message, Terminated) and self._link.lost is None:
            self._link.send(Frame(wire.TERMINATED, self.path, tag=message.reason))


class Link:
    """This node's one-way channel to ``node``, plus the asks waiting on its replies."""

    def __init__(self, runtime: NodeRuntime, node: str, handle: Any) -> None:
        self.runtime = runtime
        self.node = node
        self.handle = handle
        self.codec = runtime.codec
        self.lost: str | None = None
        self._loop = runtime.system._loop
        self._out: list[Frame] = []
        self._out_msgs: list[tuple[Any, ActorRef]] = []  # (message, to) in _out: dead letters
        self._scheduled = False
        self.hold = 0  # deliveries from the node collecting frames to return to it
        self._seq = 0
        self._in_flight: dict[int, list[Any]] = {}
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._corr = 0
        # incoming: the next batch number this node applies, and early arrivals
        self.next_in = 1
        self.peer_process: int | None = None  # known from its first batch (seq 1)
        self.parked: dict[tuple[int, int], bytes] = {}  # (process, seq) -> an early batch
        self.watchers: dict[str, NodeWatcher] = {}  # paths here that node watches
        # streamed replies, by the corr of their ask: read here (from that node's relays),
        # and relayed from here (that node's asks answered with a stream)
        self.streams: dict[int, Callable[[], ReplyStream[Any, Any] | None]] = {}
        self.relays: dict[int, asyncio.Task[None]] = {}
        self._closing: set[asyncio.Task[None]] = set()  # real streams being closed
        self._heartbeat: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Link to {self.node}{' (lost)' if self.lost else ''}>"

    # -- sending ----------------------------------------------------------------------------

    def expect(self, fut: asyncio.Future[Any]) -> int:
        """A correlation id for an ask (or stop) whose reply completes ``fut``."""
        self._corr += 1
        corr = self._corr
        self._pending[corr] = fut
        fut.add_done_callback(functools.partial(self._forget_ask, corr))
        return corr

    def _forget_ask(self, corr: int, _: asyncio.Future[Any]) -> None:
        self._pending.pop(corr, None)  # timed out or answered: a later reply is a dead letter

    def send(self, frame: Frame, message: tuple[Any, ActorRef] | None = None) -> None:
        self._out.append(frame)
        if message is not None:
            self._out_msgs.append(message)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self.hold or not self._out or self.lost is not None:
            return  # a delivery from the node returns them, or nothing is left to send
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            return  # a call in flight finishing flushes the rest
        seq, data, messages = self._take()
        self._in_flight[seq] = messages
        try:
            call = self.handle.deliver.remote(data)
        except Exception as exc:  # the handle itself is unusable
            self.runtime.lose(self, _reason(exc))
            return
        done = asyncio.wrap_future(call.future(), loop=self._loop)
        done.add_done_callback(functools.partial(self._delivered, seq))

    def _take(self) -> tuple[int, bytes, list[Any]]:
        frames, self._out = self._out, []
        messages, self._out_msgs = self._out_msgs, []
        self._seq += 1
        return self._seq, self.codec.batch(self._seq, frames), messages

    def release(self) -> None:
        """A delivery stops holding frames back; the last one lets a flush send what is left
        (the piggyback that follows usually takes it first)."""
        self.hold -= 1
        if not self.hold and self._out and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def piggyback(self) -> bytes | None:
        """The frames waiting for the node, as a batch to return from its ``deliver`` call."""
        if not self._out or self.lost is not None:
            return None
        return self._take()[1]

    def _delivered(self, seq: int, done: asyncio.Future[Any]) -> None:
        if self.lost is not None:
            return
        error = done.exception()
        if error is not None:
            self.runtime.lose(self, _reason(error))
            return
        del self._in_flight[seq]
        returned = done.result()
        if returned:  # what the node had for us by the end of the call (replies, mostly)
            self.runtime.deliver(returned)
        if self._out and not self._scheduled:
            self._flush()

    # -- receiving replies ------------------------------------------------------------------

    def reply(self, frame: Frame) -> None:
        fut = self._pending.pop(frame.corr, None)
        if fut is None or fut.done():
            value = self.codec.decode_body(frame.tag, frame.body) if frame.ok else frame.tag
            self.runtime.system.dead_letter(
                value, None, f"late reply from node {self.node}: the ask had ended"
            )
            return
        if frame.ok:
            fut.set_result(self.codec.decode_body(frame.tag, frame.body))
        else:
            fut.set_exception(self.codec.decode_error(frame.tag, frame.body))

    # -- streamed replies: the asker's side ------------------------------------------------

    def open_stream(self, frame: Frame) -> None:
        """``STREAM``: ask ``corr`` is answered with a stream; it resolves with a local one."""
        corr = frame.corr
        fut = self._pending.pop(corr, None)
        if fut is None or fut.done():  # the ask timed out meanwhile: nobody will read it
            self.send(Frame(wire.CLOSE, "", corr))
            self.runtime.system.dead_letter(
                frame.tag, None, f"late streamed reply from node {self.node}: the ask had ended"
            )
            return
        try:
            cls, label = self.codec.decode_stream(frame.tag, frame.body)
            stream = cls(label, functools.partial(self._stream_closed, corr))
        except Exception as exc:  # refused, or a subclass that does not take (label, on_close)
            self.send(Frame(wire.CLOSE, "", corr))
            if not isinstance(exc, NotPortable):
                exc = NotPortable(f"{frame.tag} cannot be built as cls(label, on_close): {exc}")
            fut.set_exception(exc)
            return
        self.streams[corr] = _held(stream)
        fut.set_result(stream)

    def stream_item(self, frame: Frame) -> None:
        stream = self._open(frame.corr)
        if stream is None:
            return
        try:
            item = self.codec.decode_body(frame.tag, frame.body)
        except Exception as exc:  # an item skipped would break the order: end it here
            del self.streams[frame.corr]
            self.send(Frame(wire.CLOSE, "", frame.corr))
            stream._end(exc)
            return
        stream._push(item)

    def stream_end(self, frame: Frame) -> None:
        stream = self._open(frame.corr)
        if stream is None:
            return
        del self.streams[frame.corr]
        outcome: Any
        if frame.ok:
            try:
                outcome = self.codec.decode_body(frame.tag, frame.body)
            except Exception as exc:
                outcome = exc
        else:
            outcome = self.codec.decode_error(frame.tag, frame.body)
        stream._end(outcome)

    def _open(self, corr: int) -> ReplyStream[Any, Any] | None:
        """The open stream of ``corr``; None when it was closed (its late frames drop)."""
        held = self.streams.get(corr)
        if held is None:
            return None
        stream = held()
        if stream is None:  # dropped unread by the asker: close it over there
            self._stream_closed(corr)
        return stream

    def _stream_closed(self, corr: int) -> None:
        """``on_close`` of a local stream (closed before its end, or dropped)."""
        if self.streams.pop(corr, None) is not None and self.lost is None:
            self.send(Frame(wire.CLOSE, "", corr))

    # -- streamed replies: the answering side ----------------------------------------------

    def relay(self, corr: int, stream: ReplyStream[Any, Any]) -> None:
        """Answer ask ``corr`` with ``stream``: open it on the asker, then relay it."""
        try:
            tag, body = self.codec.stream(stream)
        except NotPortable as exc:
            etag, ebody = self.codec.error(exc)
            self.send(Frame(wire.REPLY, "", corr, etag, ebody, ok=False))
            self.close_later(stream)
            return
        self.send(Frame(wire.STREAM, "", corr, tag, body))
        task = self.relays[corr] = self._loop.create_task(self._relay(corr, stream))
        task.add_done_callback(functools.partial(self._relay_done, corr, stream))

    async def _relay(self, corr: int, stream: ReplyStream[Any, Any]) -> None:
        """The real stream's reader: each item as it comes (those already queued leave in
        one batch), then its end. The stream's error, an item that cannot cross, or a stream
        that stopped without a final value each end the asker's stream with that error."""
        codec, send = self.codec, self.send
        try:
            async for item in stream:
                if self.lost is not None:
                    return
                tag, body = codec.body(item)
                if stream.closed:  # the final value: the item after which it is finished
                    send(Frame(wire.END, "", corr, tag, body))
                    return
                send(Frame(wire.ITEM, "", corr, tag, body))
            raise stream._incomplete()
        except Exception as exc:
            if self.lost is None:
                tag, body = codec.error(exc)
                send(Frame(wire.END, "", corr, tag, body, ok=False))

    def _relay_done(
        self, corr: int, stream: ReplyStream[Any, Any], task: asyncio.Task[None]
    ) -> None:
        if self.relays.get(corr) is task:
            del self.relays[corr]
        if not stream.closed:  # stopped early (CLOSE, a lost asker, an error): stop its work
            self.close_later(stream)

    def close_later(self, stream: ReplyStream[Any, Any]) -> None:
        """``aclose()`` a real stream nobody reads any more (its ``on_close`` stops the
        answering actor's work), from a task of its own: the callers cannot await."""
        task = self._loop.create_task(self._aclose(stream))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _aclose(self, stream: ReplyStream[Any, Any]) -> None:
        try:
            await stream.aclose()
        except Exception as exc:  # the answering actor's on_close failed: nothing to undo
            log.warning(
                "cluster.stream_close_failed", node=self.node, stream=repr(stream), error=repr(exc)
            )

    def close_relay(self, frame: Frame) -> None:
        """``CLOSE``: the asker closed stream ``corr``; a relay already done ignores it."""
        task = self.relays.pop(frame.corr, None)
        if task is not None:
            task.cancel()  # its done callback closes the real stream

    # -- liveness ---------------------------------------------------------------------------

    def start_heartbeat(self, every: float) -> None:
        self._heartbeat = self._loop.create_task(self._beat(every))

    async def _beat(self, every: float) -> None:
        # an unanswered ping within this long loses the node (Ray itself reports a dead
        # process at once; this catches a hung or partitioned one)
        patience = max(10 * every, 10.0)
        while self.lost is None:
            await asyncio.sleep(every)
            if self.lost is not None:
                return
            try:
                call = self.handle.ping.remote()
                await asyncio.wait_for(asyncio.wrap_future(call.future()), patience)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.lost is None:
                    self.runtime.lose(self, _reason(exc))
                return

    def fail(self, reason: str) -> list[tuple[Any, ActorRef]]:
        """Mark the link lost; fail its asks; return the messages that may never have
        arrived, with their recipients."""
        self.lost = reason
        if self._heartbeat is not None and self._heartbeat is not asyncio.current_task():
            self._heartbeat.cancel()
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(
                    NodeUnreachable(f"node {self.node} is unreachable ({reason}): no reply came")
                )
        streams, self.streams = self.streams, {}
        for held in streams.values():
            stream = held()
            if stream is not None:
                stream._end(
                    NodeUnreachable(f"node {self.node} is unreachable ({reason}): the stream ended")
                )
        relays, self.relays = self.relays, {}
        for task in relays.values():
            task.cancel()  # the asker is gone: each real stream is closed
        undelivered = [m for batch in self._in_flight.values() for m in batch]
        undelivered.extend(self._out_msgs)
        self._in_flight.clear()
        self._out, self._out_msgs = [], []
        return undelivered


def _held(stream: ReplyStream[Any, Any]) -> Callable[[], ReplyStream[Any, Any] | None]:
    """How a link holds an open stream: weakly where the class allows (a dropped stream then
    closes, as a local ``CompletionStream`` does), else until its end."""
    try:
        return weakref.ref(stream)
    except TypeError:  # no __weakref__ slot (AgentStream)
        return lambda: stream


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__
