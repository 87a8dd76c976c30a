"""``InferenceRouter``: one inference actor's face over several engines (one per node).

Why: on a cluster each node with an engine runs its own ``InferenceActor`` (data parallel:
one engine per node or GPU), but agents and the gateway keep asking one path,
``/kernel/inference``. The router stands there, takes the same ``InferenceRequest`` protocol
and passes each ``Generate`` on to one engine with ``ctx.forward``: the engine sees the agent
as the requester (its fair queue and its cancellation work per agent, as without a router)
and answers the agent directly, so a request costs no second ask.

Which engine: the one with the least queue depth, unless the requester has an engine it used
before that is at most ``slack`` requests deeper than the least (affinity: a conversation
keeps hitting the prefix cache it warmed). An engine's depth is what it last reported
(``waiting + in_flight``, asked every ``poll`` seconds), plus what the router sent it since,
minus the asks of those that ended since. Engines whose engine is not up are passed over
while any is up; with none up a request waits in the queue of the least deep one there is
(it starts with its engine). An engine path that does not resolve (its node is lost, its
group restarting) is skipped; with none at all a request fails with ``EngineUnavailable``,
which agents retry.

The router answers ``InferenceStats`` for all its engines, asked then (sums; the largest TTFT
p50), and
announces ``EngineReady`` / ``EngineDown`` for its own path (``events.py``) when the first of
its engines comes up and when the last goes down, so readiness (``readiness.py``) reads the
same as for one inference actor. It keeps no request state that a restart would lose: a
forwarded request belongs to its engine.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import msgspec
import structlog

from actoros.core import Actor, ActorRef, Context, DeferredReply
from actoros.core.clock import TimerHandle
from actoros.core.protocol import refuse, takes

from .errors import EngineUnavailable, InferenceError
from .events import EngineDown, EngineReady
from .messages import Generate, InferenceRequest, InferenceStats
from .metrics import InferenceMetrics

__all__ = ["InferenceRouter"]

log = structlog.get_logger("actoros.inference")


class _Poll(msgspec.Struct, tag=True, frozen=True):
    """The router's own timer: time to ask the engines for their reports again."""


_POLL = _Poll()

STATS_TIMEOUT = 1.0
"""Seconds an engine may take to report (it answers at once unless it is restarting, or its
node is lost: then it counts as not up, and nothing, until the next report)."""


class InferenceRouter(Actor):
    """Routes ``Generate`` over the inference actors at ``engines`` (paths; see the module
    docstring). ``slack``: how much deeper than the least deep engine a requester's own engine
    may be and still get its next request; ``remember``: how many requesters' engines it
    keeps; ``poll``: seconds between asking each engine for its depth."""

    def __init__(
        self,
        engines: Sequence[str],
        *,
        model: str | None = None,
        slack: int = 8,
        remember: int = 4096,
        poll: float = 0.25,
    ) -> None:
        if not engines:
            raise ValueError("InferenceRouter needs at least one engine path")
        if slack < 0 or remember < 1 or poll <= 0:
            raise ValueError("InferenceRouter: slack >= 0, remember >= 1 and poll > 0")
        self.engines = tuple(engines)
        self.model = model
        self.slack = slack
        self.remember = remember
        self.poll = poll
        self._reported: dict[str, InferenceMetrics | None] = dict.fromkeys(self.engines)
        self._sent: dict[str, int] = dict.fromkeys(self.engines, 0)  # since the last report
        self._affinity: OrderedDict[str, str] = OrderedDict()  # requester path -> engine path
        self._ready = False  # announced EngineReady (and no EngineDown since)
        self._polling: asyncio.Task[None] | None = None
        self._answering: set[asyncio.Task[None]] = set()  # InferenceStats being asked around
        self._timer: TimerHandle | None = None
        self._stopping = False

    async def on_start(self) -> None:
        self._poll_now()

    async def on_stop(self) -> None:
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        if self._polling is not None:
            self._polling.cancel()
        if self._ready:
            self._announce(EngineDown(path=self.ctx.path, reason="the inference router stopped"))

    # -- messages ---------------------------------------------------------------------------

    def receive(self, message: Any, ctx: Context) -> Any:
        match message:
            case Generate():
                self._route(message, ctx)
                return None
            case InferenceStats():
                reply = ctx.defer_reply()
                task = asyncio.get_running_loop().create_task(self._answer_stats(reply))
                self._answering.add(task)  # the loop holds tasks weakly
                task.add_done_callback(self._answering.discard)
                return None
            case _Poll():
                self._poll_now()
                return None
            case _:
                kind = type(message).__name__
                error = f"the inference router takes {takes(InferenceRequest)}, not {kind}"
                refuse(message, ctx, InferenceError(error))
                return None

    def _route(self, gen: Generate, ctx: Context) -> None:
        sender = ctx.sender
        chosen = self._choose(sender.path if sender is not None else None)
        if chosen is None:
            refuse(gen, ctx, EngineUnavailable(self._none_running("on any node")))
            return
        path, ref = chosen
        try:
            reply = ctx.forward(ref)
        except Exception as exc:  # not sent (NotPortable, a full mailbox): the asker's error
            refuse(gen, ctx, exc)
            return
        self._sent[path] += 1
        if reply.expected:
            reply.on_done(lambda: self._ended(path))

    def _ended(self, path: str) -> None:
        self._sent[path] -= 1  # may go below 0 after a report: it counts against the report

    def _choose(self, requester: str | None) -> tuple[str, ActorRef] | None:
        lookup = self.ctx.system.lookup
        live: list[tuple[int, str, ActorRef]] = []
        up: list[tuple[int, str, ActorRef]] = []
        for path in self.engines:
            ref = lookup(path)
            if ref is None:
                continue
            entry = (self._depth(path), path, ref)
            live.append(entry)
            report = self._reported[path]
            if report is not None and report.engine_ready:
                up.append(entry)
        pool = up or live
        if not pool:
            return None
        least = min(pool, key=lambda entry: entry[0])
        if requester is None:
            return least[1], least[2]
        own = self._affinity.get(requester)
        for depth, path, ref in pool:
            if path == own and depth <= least[0] + self.slack:
                self._affinity.move_to_end(requester)
                return path, ref
        self._affinity[requester] = least[1]
        self._affinity.move_to_end(requester)
        if len(self._affinity) > self.remember:
            self._affinity.popitem(last=False)
        return least[1], least[2]

    def _depth(self, path: str) -> int:
        report = self._reported[path]
        base = report.waiting + report.in_flight if report is not None else 0
        return max(0, base + self._sent[path])

    def _none_running(self, where: str) -> str:
        return (
            f"no inference engine is running {where} (of {', '.join(self.engines)}): "
            f"its node is lost or it is restarting; retry once one is back"
        )

    # -- what the engines say ---------------------------------------------------------------

    def _poll_now(self) -> None:
        """Ask every engine for its report; the next round comes ``poll`` seconds after this
        one's answers (on the system's clock, as a ``_Poll`` to itself)."""
        self._polling = task = asyncio.get_running_loop().create_task(self._poll_once())
        task.add_done_callback(self._polled)

    def _polled(self, task: asyncio.Task[None]) -> None:
        if not self._stopping and not task.cancelled():
            self._timer = self.ctx.system.clock.call_later(self.poll, self.ctx.self.tell, _POLL)

    async def _poll_once(self) -> None:
        counted = dict(self._sent)  # sent before the ask: the engine counts them in its report
        reports = await self._reports()
        for path, report in zip(self.engines, reports, strict=True):
            self._reported[path] = report
            self._sent[path] -= counted[path]
        self._announce_changes()

    async def _reports(self) -> list[InferenceMetrics | None]:
        lookup = self.ctx.system.lookup
        refs = [lookup(path) for path in self.engines]
        return await asyncio.gather(*(_report(ref, STATS_TIMEOUT) for ref in refs))

    async def _answer_stats(self, reply: DeferredReply) -> None:
        """``InferenceStats``: the engines' reports asked now (the last round's, up to ``poll``
        seconds old, would miss the requests that just ended), added up."""
        reports: list[InferenceMetrics | None] = []
        try:
            reports = await self._reports()
        finally:
            reply.resolve(_added_up(reports))

    def _announce_changes(self) -> None:
        up = [r for r in self._reported.values() if r is not None and r.engine_ready]
        if up and not self._ready:
            self._ready = True
            self._announce(
                EngineReady(
                    path=self.ctx.path,
                    model=self.model,
                    max_model_len=min(r.max_model_len for r in up),
                    max_num_seqs=sum(r.max_num_seqs for r in up),
                    supports_constraints=all(r.supports_constraints for r in up),
                )
            )
            log.info("inference.router_ready", actor=self.ctx.path, engines=len(up))
        elif not up and self._ready:
            self._ready = False
            self._announce(EngineDown(path=self.ctx.path, reason=self._none_running("now")))

    def _announce(self, event: EngineReady | EngineDown) -> None:
        events = self.ctx.system.events
        if events.wants(type(event)):
            events.publish(event)


def _added_up(reports: list[InferenceMetrics | None]) -> InferenceMetrics:
    """Engines' reports as one (a report that did not come counts nothing)."""
    got = [r for r in reports if r is not None]
    up = [r for r in got if r.engine_ready]
    ttfts = [r.ttft_p50_s for r in got if r.ttft_p50_s is not None]
    return InferenceMetrics(
        engine_ready=bool(up),
        waiting=sum(r.waiting for r in got),
        in_flight=sum(r.in_flight for r in got),
        completed=sum(r.completed for r in got),
        failed=sum(r.failed for r in got),
        output_tokens=sum(r.output_tokens for r in got),
        tokens_per_s=sum(r.tokens_per_s for r in got),
        ttft_p50_s=max(ttfts) if ttfts else None,
        engine_unfinished=sum(r.engine_unfinished for r in got),
        supports_constraints=bool(up) and all(r.supports_constraints for r in up),
        max_model_len=min((r.max_model_len for r in up), default=0),
        max_num_seqs=sum(r.max_num_seqs for r in up),
    )


async def _report(ref: ActorRef | None, timeout: float) -> InferenceMetrics | None:
    """What the inference actor ``ref`` says of itself; ``None``: nothing (gone, no answer)."""
    if ref is None:
        return None
    try:
        report = await ref.ask(InferenceStats(), timeout=timeout)
    except Exception:  # stopped, restarting, its node lost: no report this time
        return None
    return report if isinstance(report, InferenceMetrics) else None
