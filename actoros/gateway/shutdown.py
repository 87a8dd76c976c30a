"""``Shutdown``: the gateway tells long requests that it is stopping.

uvicorn, asked to exit, lets open requests run for a grace period and then cancels them,
logging each as an error and answering 500. Requests that may last (an agent's turn, a
stream, a live feed) watch the app's ``Shutdown`` instead and end cleanly as soon as the
gateway begins to stop: a request still waiting answers 503, a stream sends its last event.

``GatewayActor`` puts one in ``app.state.shutdown`` before serving and calls ``begin()`` in
its ``on_stop``; a handler finds it with ``shutdown_of(request)``.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import HTTPConnection

__all__ = ["Shutdown", "shutdown_of"]


class Shutdown:
    """A one-way switch with callbacks: ``watch(cb)`` runs ``cb`` when ``begin()`` is called
    (at once if it already was) and returns a function that forgets ``cb``."""

    def __init__(self) -> None:
        self.begun = False
        self._callbacks: set[Callable[[], object]] = set()

    def watch(self, callback: Callable[[], object]) -> Callable[[], None]:
        if self.begun:
            callback()
            return _nothing
        self._callbacks.add(callback)
        return lambda: self._callbacks.discard(callback)

    def begin(self) -> None:
        if self.begun:
            return
        self.begun = True
        callbacks, self._callbacks = self._callbacks, set()
        for callback in callbacks:
            callback()


def _nothing() -> None:
    return None


def shutdown_of(connection: HTTPConnection) -> Shutdown:
    """The app's ``Shutdown`` (an app served by something else gets one that never begins)."""
    state = connection.app.state
    shutdown = getattr(state, "shutdown", None)
    if not isinstance(shutdown, Shutdown):
        shutdown = state.shutdown = Shutdown()
    return shutdown
