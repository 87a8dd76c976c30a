"""One node's side of the cluster: its ``ActorSystem``, its links, and the frames it applies.

``NodeRuntime`` lives inside a node's process (``process.py``), on the system's loop. It makes
``system.lookup("/group/...")`` find actors on other nodes (through ``placement``: which node
hosts each top-level group), turns incoming frames into posts to local actors, and sends each
reply back the way its ask came — a ``ReplyStream`` reply as a stream relayed by the link
(``remote.py``), since a stream cannot cross as a value.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import msgspec
import structlog

from actoros.core import ActorRef, ActorStopped, ActorSystem
from actoros.core.stream import ReplyStream

from . import wire
from .remote import PIGGYBACK_TURNS, Link, NodeWatcher, RemoteCell
from .wire import Codec, Frame, NotPortable

log = structlog.get_logger("actoros.cluster")

_ASKS = (wire.MSG, wire.STOP)
"""Frame kinds whose ``corr`` asks for an answer (a reply's, or a stream's, answers one)."""


class NodeRuntime:
    def __init__(self, system: ActorSystem, name: str, *, allow_pickle: bool = False) -> None:
        self.system = system
        self.name = name
        self.codec = Codec(name, self._ref_key, self.make_ref, allow_pickle)
        self.links: dict[str, Link] = {}
        self.placement: dict[str, str] = {}  # top-level group -> node
        self._cells: dict[tuple[str, str], RemoteCell] = {}
        self._node_watches: dict[str, Callable[[str], None]] = {}
        self._placing: dict[str, list[asyncio.Future[None]]] = {}  # groups awaited
        self.heartbeat = 1.0
        self.closed = False
        self.losses = 0  # nodes lost so far (app/workload.py runs a disturbed task again)
        system._resolver = self._resolve

    # -- peers ------------------------------------------------------------------------------

    def connect(self, node: str, handle: Any) -> None:
        """Know ``node`` at ``handle`` (a new node, or a restarted one under the same name)."""
        if node == self.name:
            return
        old = self.links.get(node)
        if old is not None and old.lost is None:
            self.lose(old, "replaced by a new process")
        link = self.links[node] = Link(self, node, handle)
        link.start_heartbeat(self.heartbeat)

    def place(self, placement: dict[str, str]) -> None:
        """Record where groups run now, and wake whoever waits for one of them."""
        self.placement.update(placement)
        for group in placement:
            for fut in self._placing.pop(group, ()):
                if not fut.done():
                    fut.set_result(None)

    async def placed(self, group: str, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until some node runs ``group``; whether one does."""
        if group in self.placement:
            return True
        fut = self.system._loop.create_future()
        self._placing.setdefault(group, []).append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        return True

    def watch_node(self, node: str, callback: Callable[[str], None]) -> None:
        """Call ``callback(reason)`` when ``node`` is lost (replaces an earlier callback); at
        once if it is lost already."""
        link = self.links.get(node)
        if link is not None and link.lost is not None:
            callback(link.lost)
            return
        self._node_watches[node] = callback

    def lose(self, link: Link, reason: str) -> None:
        if link.lost is not None:
            return
        undelivered = link.fail(reason)
        self.losses += 1
        log.warning("cluster.node_lost", node=link.node, seen_from=self.name, reason=reason)
        why = f"node {link.node} lost ({reason})"
        for message, recipient in undelivered:
            self.system.dead_letter(message, recipient, why)
        for cell in [c for (node, _), c in self._cells.items() if node == link.node]:
            cell.node_lost = True
            cell.terminate(why)
        for watcher in link.watchers.values():  # its watches of our actors end with it
            cell_here = self.local(watcher.path)
            if cell_here is not None and cell_here._watchers:
                cell_here._watchers.discard(watcher)
        link.watchers.clear()
        for group in [g for g, n in self.placement.items() if n == link.node]:
            del self.placement[group]
        callback = self._node_watches.pop(link.node, None)
        if callback is not None:
            callback(reason)

    # -- refs -------------------------------------------------------------------------------

    def _ref_key(self, ref: ActorRef) -> tuple[str, str]:
        cell = ref._cell
        if isinstance(cell, RemoteCell):
            return cell.node, cell.path
        return self.name, cell.path

    def make_ref(self, node: str, path: str) -> ActorRef:
        """The ref a frame names: a local actor's own ref, or a remote one (cached)."""
        if node == self.name:
            cell = self.local(path)
            if cell is not None:
                return cell.ref  # type: ignore[no-any-return]
            return RemoteCell(self, node, path, stopped="no such actor").ref
        key = (node, path)
        remote = self._cells.get(key)
        if remote is None:
            link = self.links.get(node)
            if link is None or link.lost is not None:
                why = "unknown node" if link is None else f"node {node} lost ({link.lost})"
                return RemoteCell(self, node, path, stopped=why).ref
            remote = self._cells[key] = RemoteCell(self, node, path)
        return remote.ref

    def forget(self, cell: RemoteCell) -> None:
        if self._cells.get((cell.node, cell.path)) is cell:
            del self._cells[(cell.node, cell.path)]

    def _resolve(self, path: str) -> ActorRef | None:
        """``system.lookup`` of a path that is not here: its group's node, if one hosts it."""
        group = path.strip("/").split("/", 1)[0]
        node = self.placement.get(group)
        if node is None or node == self.name:
            return None
        link = self.links.get(node)
        if link is None or link.lost is not None:
            return None
        return self.make_ref(node, path)

    def local(self, path: str) -> Any:
        """The live local cell at ``path`` (never a remote one), or None."""
        cell = self.system._root
        for part in path.strip("/").split("/"):
            if cell is None:
                return None
            if part:
                cell = (cell._children or {}).get(part)
        if cell is None or cell is self.system._root or cell._dead:
            return None
        return cell

    # -- incoming ---------------------------------------------------------------------------

    async def receive(self, data: bytes) -> bytes | None:
        """A ``deliver`` call: apply its batch and, when it asked something here, let the
        actors run a few loop turns and return what this node has for the sender by then
        (``PIGGYBACK_TURNS``: the replies of quick asks). A batch of tells and replies is
        answered at once: on a busy node each loop turn can be long."""
        link, asks = self._deliver(data)
        if link is None or link.lost is not None:
            return None
        if asks:
            link.hold += 1
            try:
                for _ in range(PIGGYBACK_TURNS):
                    await asyncio.sleep(0)
            finally:
                link.release()
        return link.piggyback()

    def deliver(self, data: bytes) -> Link | None:
        """Apply one batch, in its link's ``seq`` order (early ones wait for the gap); returns
        the link it came by."""
        return self._deliver(data)[0]

    def _deliver(self, data: bytes) -> tuple[Link | None, int]:
        batch = self.codec.decode_batch(data)
        link = self.links.get(batch.src)
        if link is None or link.lost is not None:
            # from a node lost or stopped (what it still had in flight), or never known
            drop = log.warning if link is None and not self.closed else log.debug
            drop("cluster.batch_dropped", node=self.name, src=batch.src, frames=len(batch.frames))
            return None, 0
        if link.peer_process is None and batch.seq == 1:
            link.peer_process = batch.process  # the process this link hears from from now on
            for key in [k for k in link.parked if k[0] != batch.process]:
                del link.parked[key]  # early batches of an earlier process: never applied
        if link.peer_process is not None and batch.process != link.peer_process:
            log.debug("cluster.batch_from_old_process", node=self.name, src=batch.src)
            return link, 0
        if batch.seq != link.next_in:
            link.parked[(batch.process, batch.seq)] = data
            return link, 0
        asks = self._apply(link, batch.frames)
        link.next_in += 1
        while (key := (batch.process, link.next_in)) in link.parked:
            asks += self._apply(link, self.codec.decode_batch(link.parked.pop(key)).frames)
            link.next_in += 1
        return link, asks

    def _apply(self, link: Link, frames: list[Frame]) -> int:
        """Apply ``frames``; how many of them ask for an answer."""
        asks = 0
        for frame in frames:
            if frame.corr and frame.kind in _ASKS:
                asks += 1
            try:
                self._frame(link, frame)
            except Exception as exc:  # one bad frame never stops the batch
                log.error(
                    "cluster.bad_frame",
                    node=self.name,
                    src=link.node,
                    kind=frame.kind,
                    actor=frame.path,
                    error=repr(exc),
                )
                if frame.corr and frame.kind in _ASKS:
                    self._reply_error(link, frame.corr, exc)
        return asks

    def _frame(self, link: Link, frame: Frame) -> None:
        kind = frame.kind
        if kind == wire.MSG:
            self._message(link, frame)
        elif kind == wire.REPLY:
            link.reply(frame)
        elif kind == wire.ITEM:
            link.stream_item(frame)
        elif kind == wire.END:
            link.stream_end(frame)
        elif kind == wire.STREAM:
            link.open_stream(frame)
        elif kind == wire.CLOSE:
            link.close_relay(frame)
        elif kind == wire.TERMINATED:
            cell = self._cells.get((link.node, frame.path))
            if cell is not None:
                cell.terminate(frame.tag)
        elif kind == wire.WATCH:
            self._watch(link, frame.path)
        elif kind == wire.UNWATCH:
            watcher = link.watchers.pop(frame.path, None)
            cell = self.local(frame.path)
            if watcher is not None and cell is not None and cell._watchers:
                cell._watchers.discard(watcher)
        elif kind == wire.STOP:
            self.system._loop.create_task(self._stop(link, frame))
        else:
            raise ValueError(f"unknown frame kind {kind}")

    def _message(self, link: Link, frame: Frame) -> None:
        cell = self.local(frame.path)
        message = self.codec.decode_body(frame.tag, frame.body)
        if cell is None:
            self.system.dead_letter(message, None, f"no actor at {frame.path} on {self.name}")
            if frame.corr:
                self._reply_error(
                    link, frame.corr, ActorStopped(f"no actor at {frame.path} on node {self.name}")
                )
            link.send(Frame(wire.TERMINATED, frame.path, tag="no such actor"))
            return
        sender = frame.sender if isinstance(frame.sender, ActorRef) else None
        fut = None
        if frame.corr:
            fut = self.system._loop.create_future()
            fut.add_done_callback(functools.partial(self._answer, link, frame.corr))
        cell._post((message, sender, fut))

    def _answer(self, link: Link, corr: int, fut: asyncio.Future[Any]) -> None:
        if link.lost is not None:
            if not fut.cancelled() and fut.exception() is None:
                if isinstance(fut.result(), ReplyStream):
                    link.close_later(fut.result())  # nobody will read it
            return
        if fut.cancelled():
            self._reply_error(link, corr, ActorStopped("the ask was cancelled"))
            return
        error = fut.exception()
        if error is not None:
            self._reply_error(link, corr, error)
            return
        result = fut.result()
        if isinstance(result, ReplyStream):
            link.relay(corr, result)
            return
        try:
            tag, body = link.codec.body(result)
        except NotPortable as exc:
            self._reply_error(link, corr, exc)
            return
        link.send(Frame(wire.REPLY, "", corr, tag, body))

    def _reply_error(self, link: Link, corr: int, error: BaseException) -> None:
        tag, body = link.codec.error(error)
        link.send(Frame(wire.REPLY, "", corr, tag, body, ok=False))

    def _watch(self, link: Link, path: str) -> None:
        cell = self.local(path)
        if cell is None:
            link.send(Frame(wire.TERMINATED, path, tag="no such actor"))
            return
        watcher = link.watchers.get(path)
        if watcher is None:
            watcher = link.watchers[path] = NodeWatcher(link, path)
        if cell._watchers is None:
            cell._watchers = set()
        cell._watchers.add(watcher)

    async def _stop(self, link: Link, frame: Frame) -> None:
        cell = self.local(frame.path)
        if cell is not None:
            await cell.ref.stop()
        if link.lost is None:
            link.send(Frame(wire.REPLY, "", frame.corr, "", msgspec.Raw(b"\xc0")))

    # -- the end ----------------------------------------------------------------------------

    def close(self) -> None:
        self.closed = True
        for link in self.links.values():
            if link.lost is None:
                link.fail("this node stopped")
        for cell in list(self._cells.values()):
            cell.terminate(f"node {self.name} stopped")
