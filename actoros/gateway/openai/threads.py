"""Whose thread is it: the gateway opens agents' threads and checks the ids clients send back.

A thread belongs to whoever opened it: the caller's token (none without tokens, where every
caller is the same one) and the agent it was opened for (``thread_owner``, stored with the
thread in the thread store, so it holds across restarts). An id is checked before any agent
sees it: an id of no thread, or of a thread that belongs to another token or agent, is the
same 404, so an id tells nobody else even that it exists, and the answer lists no threads.
"""

from __future__ import annotations

from collections import OrderedDict

import msgspec

from actoros.kernel.threads import CreateThread, GetThread, ThreadInfo, ThreadNotFound

from ..auth import Caller
from ..errors import APIError
from ..host import Host
from .schema import THREAD_HEADER

__all__ = ["Threads", "thread_owner"]


def thread_owner(caller: Caller, agent: str) -> str:
    """A gateway thread's owner, as the thread store keeps it: the caller's token (``null``
    without tokens) and the agent the thread was opened for."""
    return msgspec.json.encode({"token": caller.name, "agent": agent}).decode()


class Threads:
    """Opens threads for new conversations and checks the ids clients send back (see the
    module docstring).

    Ids are looked up one by one, by key (``GetThread``); the owners of the newest
    ``remember`` ids this gateway opened or checked are remembered.
    """

    def __init__(self, host: Host, remember: int = 100_000) -> None:
        self.host = host
        self.owners: OrderedDict[str, str | None] = OrderedDict()
        self.remember = remember

    def _note(self, thread_id: str, owner: str | None) -> None:
        self.owners[thread_id] = owner
        self.owners.move_to_end(thread_id)
        while len(self.owners) > self.remember:
            self.owners.popitem(last=False)

    async def open(self, given: str | None, caller: Caller, agent: str, timeout: float) -> str:
        """The thread of this turn: a new one (``given`` is ``None``) or ``given``, once it is
        known to be ``caller``'s with ``agent``; ``APIError`` 404 otherwise."""
        store = self.host.service("threads")
        if store is None:
            raise APIError(
                503,
                "the thread store is not running; retry",
                type="server_error",
                code="unavailable",
            )
        owner = thread_owner(caller, agent)
        if given is None:
            created = await store.ask(CreateThread(title=agent, owner=owner), timeout=timeout)
            thread_id = str(created)
            self._note(thread_id, owner)
            return thread_id
        if given in self.owners:
            self.owners.move_to_end(given)
            found = self.owners[given]
        else:
            try:
                info = await store.ask(GetThread(thread_id=given), timeout=timeout)
            except ThreadNotFound:
                raise _no_thread(given, agent) from None
            assert isinstance(info, ThreadInfo)
            found = info.owner
            self._note(given, found)
        if found != owner:
            raise _no_thread(given, agent)
        return given


def _no_thread(thread_id: str, agent: str) -> APIError:
    return APIError(
        404,
        f"no thread {thread_id!r} of yours with {agent!r}: send an {THREAD_HEADER} header this "
        "gateway gave you for this model, or none to start a new conversation",
        param=THREAD_HEADER,
        code="thread_not_found",
    )
