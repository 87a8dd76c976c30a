"""The application layer: a typed ``Config`` becomes a running system (``actoros run``).

- ``assembly.py``: config → supervision tree (the kernel, the agent groups, the gateway):
  the map of the architecture, read top to bottom.
- ``host.py``: ``System``, the running system a caller holds (services and agents by name,
  the state-dir lock, ``shutdown``).
- ``workload.py``: the path of one workload task, from its id to its result line, and its
  typed ``TaskOutcome``.
- ``run.py``: ``run_system`` — start, run the workload or serve, stop.
- ``chat.py``: ``chat`` — ``actoros run --chat``.

Import from here: ``from actoros.app import run_system, start_system, System``.
"""

from __future__ import annotations

from .assembly import start_system
from .chat import chat
from .host import GATEWAY, KERNEL, System
from .run import run_system
from .workload import RunSummary, TaskOutcome, workload_tasks

__all__ = [
    "GATEWAY",
    "KERNEL",
    "RunSummary",
    "System",
    "TaskOutcome",
    "chat",
    "run_system",
    "start_system",
    "workload_tasks",
]
