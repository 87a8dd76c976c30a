"""The actor numbers of ``/metrics``, by actor kind: folded from snapshots, counted from events.

Cardinality is per actor *kind* (class name), never per path: 100k actors are a handful of
series. The per-kind message counter is built from each actor's ``processed`` count; it stays
monotonic when actors stop or restart (a path's last value is carried once it disappears), at
the price of missing what an actor handled after the last scrape if it stopped before the
next one.

Events (``DeadLetter``, ``LifecycleEvent``) name a path; they count for the kind the last
snapshot saw at that path. An event about a path no snapshot has named yet (an actor started
after the last scrape) waits for the next snapshot, for at most ``_PENDING_PATHS`` distinct
paths; past that it counts as ``unknown``.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict

from actoros.core import ActorInfo, DeadLetter, LifecycleEvent

__all__ = ["UNKNOWN", "KindCounts", "reason_class"]

UNKNOWN = "unknown"  # the kind of an actor the collector never saw in a snapshot
_RETIRED_KINDS = 10_000  # stopped actors' kinds kept for late dead letters to them
_PENDING_PATHS = 10_000  # distinct unresolved paths kept between two scrapes
_LIFECYCLE = {"restarted": "restarts", "failed": "failures", "escalated": "escalations"}


def reason_class(reason: str) -> str:
    """A dead letter's free-text reason, reduced to a label with few values."""
    if reason.startswith("recipient stopped"):
        return "recipient_stopped"
    if reason.startswith("mailbox full"):
        return "mailbox_full"
    if reason.startswith("late reply"):
        return "late_reply"
    if reason.startswith("unhandled"):
        return "unhandled"
    return "other"


class _Path:
    """What is remembered of one live actor: the kind its messages count for and its
    ``processed`` count (``base``: the part already counted for an earlier kind)."""

    __slots__ = ("base", "kind", "last")

    def __init__(self, kind: str, base: int, last: int) -> None:
        self.kind = kind
        self.base = base
        self.last = last


class KindCounts:
    """The per-kind numbers (see the module docstring).

    From the last snapshot (``observe``): ``processed`` (kind → messages, carried over stops),
    ``actors`` ((kind, state) → count), ``mailbox_sum`` and ``mailbox_max`` (kind → messages).
    From events (``on_dead_letter``, ``on_lifecycle``): ``dead`` ((kind, reason) → count) and
    ``lifecycle`` ((kind, "restarts" | "failures" | "escalations") → count).
    """

    def __init__(self) -> None:
        self._paths: dict[str, _Path] = {}
        self._retired: defaultdict[str, int] = defaultdict(int)  # kind -> processed, carried
        self._retired_kinds: OrderedDict[str, str] = OrderedDict()  # path -> kind
        self.processed: dict[str, int] = {}
        self.actors: dict[tuple[str, str], int] = {}
        self.mailbox_sum: dict[str, int] = {}
        self.mailbox_max: dict[str, int] = {}
        self.dead: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.lifecycle: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._tables = {"dead": self.dead, "lifecycle": self.lifecycle}
        # (table, path, detail) -> events about an actor no snapshot has named yet
        self._pending: defaultdict[tuple[str, str, str], int] = defaultdict(int)

    def _kind_of(self, path: str) -> str | None:
        entry = self._paths.get(path)
        if entry is not None:
            return entry.kind
        return self._retired_kinds.get(path)

    def _count(self, table: str, path: str, detail: str) -> None:
        """Count an event about ``path`` under its kind in ``table``, or, while the kind is
        unknown (an actor that came after the last snapshot), until the next snapshot."""
        kind = self._kind_of(path)
        if kind is None:
            key = (table, path, detail)
            if key in self._pending or len(self._pending) < _PENDING_PATHS:
                self._pending[key] += 1
                return
            kind = UNKNOWN
        self._tables[table][(kind, detail)] += 1

    def on_dead_letter(self, event: DeadLetter) -> None:
        reason = reason_class(event.reason)
        path = getattr(event.recipient, "path", None)
        if path is None:
            self.dead[(UNKNOWN, reason)] += 1
        else:
            self._count("dead", path, reason)

    def on_lifecycle(self, event: LifecycleEvent) -> None:
        what = _LIFECYCLE.get(event.kind)
        if what is not None:
            self._count("lifecycle", event.path, what)

    def observe(self, infos: list[ActorInfo]) -> None:
        """Fold a snapshot into the per-kind numbers (see the module docstring)."""
        known = self._paths
        retired = self._retired
        seen: dict[str, _Path] = {}
        actors: defaultdict[tuple[str, str], int] = defaultdict(int)
        mailbox_sum: defaultdict[str, int] = defaultdict(int)
        mailbox_max: dict[str, int] = {}
        live: defaultdict[str, int] = defaultdict(int)
        for info in infos:
            path, processed = info.path, info.processed
            entry = known.get(path)
            if entry is None:
                entry = _Path(info.kind, 0, processed)
            elif processed < entry.last:  # a new actor under an old name
                retired[entry.kind] += entry.last - entry.base
                entry = _Path(info.kind, 0, processed)
            else:
                # between incarnations the kind is the factory's name: keep the known one,
                # and move to a new kind only once an instance runs
                if info.state == "running" and info.kind != entry.kind:
                    retired[entry.kind] += entry.last - entry.base
                    entry.kind, entry.base = info.kind, entry.last
                entry.last = processed
            seen[path] = entry
            kind = entry.kind
            live[kind] += processed - entry.base
            actors[(kind, info.state)] += 1
            mailbox_sum[kind] += info.mailbox
            if info.mailbox > mailbox_max.get(kind, -1):
                mailbox_max[kind] = info.mailbox
        recent = self._retired_kinds
        for path, entry in known.items():
            if path not in seen:  # stopped since the last scrape: carry its count
                retired[entry.kind] += entry.last - entry.base
                recent[path] = entry.kind
                recent.move_to_end(path)
        while len(recent) > _RETIRED_KINDS:
            recent.popitem(last=False)
        self._paths = seen
        self.processed = {k: retired.get(k, 0) + live.get(k, 0) for k in {*retired, *live}}
        self.actors = dict(actors)
        self.mailbox_sum = dict(mailbox_sum)
        self.mailbox_max = mailbox_max
        pending, self._pending = self._pending, defaultdict(int)
        for (table, path, detail), count in pending.items():
            self._tables[table][(self._kind_of(path) or UNKNOWN, detail)] += count
