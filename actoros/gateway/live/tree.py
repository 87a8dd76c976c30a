"""Capping large trees: which rows of a snapshot a frame shows, and what it sums up.

A parent with more than ``max_children`` children shows that many of them — restarted or not
running ones first, then those with mail waiting, then in start order — and one
``ActorGroup`` row that sums up the rest (their subtrees included); past ``max_rows`` rows in
all, the remainder is one such row too. So a system of 100,000 agents sends a page about a
thousand rows a second, and a crashed agent is never among the hidden ones.
"""

from __future__ import annotations

from actoros.core import ActorInfo

from .frames import ActorGroup, Row

__all__ = ["MAX_CHILDREN", "MAX_ROWS", "cap_tree"]

MAX_CHILDREN = 50
MAX_ROWS = 1000


def _rank(info: ActorInfo) -> int:
    """Which children to show first when not all fit: 0 restarted or not running, 1 with
    mail waiting, 2 the rest."""
    if info.restarts > 0 or info.state != "running":
        return 0
    return 1 if info.mailbox > 0 else 2


def cap_tree(
    infos: list[ActorInfo], *, max_children: int = MAX_CHILDREN, max_rows: int = MAX_ROWS
) -> tuple[list[Row], int]:
    """The rows to show of a snapshot (parents before children) and how many actors they hide.

    See the module docstring for the rule. Linear in the number of actors.
    """
    children: dict[str | None, list[ActorInfo]] = {}
    for info in infos:
        children.setdefault(info.parent, []).append(info)
    if len(infos) <= max_rows and all(len(c) <= max_children for c in children.values()):
        return list(infos), 0
    # subtree sums, children before parents: [actors, restarts, mailbox, processed]
    sums: dict[str, list[int]] = {}
    for info in reversed(infos):
        own = sums.setdefault(info.path, [0, 0, 0, 0])
        own[0] += 1
        own[1] += info.restarts
        own[2] += info.mailbox
        own[3] += info.processed
        if info.parent is not None:
            up = sums.setdefault(info.parent, [0, 0, 0, 0])
            for i in range(4):
                up[i] += own[i]

    def group(parent: str | None, total: list[int], label: str, path: str = "") -> ActorGroup:
        return ActorGroup(
            path=path or f"{parent or ''}/…",
            parent=parent,
            name=f"… {total[0]:,} more {label}",
            restarts=total[1],
            mailbox=total[2],
            processed=total[3],
            hidden=total[0],
        )

    def summed(hidden: list[ActorInfo]) -> list[int]:
        total = [0, 0, 0, 0]
        for info in hidden:
            for i, value in enumerate(sums[info.path]):
                total[i] += value
        return total

    def shown(parent: str | None) -> tuple[list[ActorInfo], list[ActorInfo]]:
        kids = children.get(parent, [])
        if len(kids) <= max_children:
            return kids, []
        # sorted() is stable: within a rank, start order
        keep = {k.path for k in sorted(kids, key=_rank)[:max_children]}
        return [k for k in kids if k.path in keep], [k for k in kids if k.path not in keep]

    rows: list[Row] = []
    hidden = 0
    cut = [0, 0, 0, 0]  # what the row limit cut off
    # (info, None): emit an actor, then its children; (None, group): emit a group row
    stack: list[tuple[ActorInfo | None, ActorGroup | None]] = []

    def push_children(parent: str | None, label: str) -> None:
        kids, rest = shown(parent)
        if rest:
            stack.append((None, group(parent, summed(rest), label)))
        stack.extend((kid, None) for kid in reversed(kids))

    push_children(None, "actors")
    while stack:
        actor, grouped = stack.pop()
        if len(rows) >= max_rows - 1:  # the last row is kept for what is cut off
            total = sums[actor.path] if actor is not None else None
            if grouped is not None:
                total = [grouped.hidden, grouped.restarts, grouped.mailbox, grouped.processed]
            assert total is not None
            for i, value in enumerate(total):
                cut[i] += value
            continue
        if grouped is not None:
            rows.append(grouped)
            hidden += grouped.hidden
            continue
        assert actor is not None
        rows.append(actor)
        push_children(actor.path, "children")
    if cut[0]:
        rows.append(group(None, cut, "actors (row limit)", path="/…row-limit"))
        hidden += cut[0]
    return rows, hidden
