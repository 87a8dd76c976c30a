"""The live view: ``GET /`` (a page of the supervision tree), ``/api/tree`` and ``/api/events``.

- ``GET /api/tree``: one JSON frame (``frames.TreeFrame``) — every actor of
  ``host.snapshot()`` (capped, ``tree.py``), the system's name and uptime, totals, and
  the inference actor's numbers.
- ``GET /api/events``: Server-Sent Events: ``throughput``, then ``tree`` frames and
  ``sample`` points, ``closing`` last (``feed.py``). ``?interval=SECONDS`` asks for another
  tree period.
- ``GET /``: a self-contained page (no CDN: plain JS, an inline SVG chart) fed by
  ``/api/events``. ``actoros top`` reads ``/api/tree`` into the same ``TreeFrame``.

The modules: ``frames`` (the JSON, declared once), ``tree`` (capping large trees), ``feed``
(frames, clients and the throughput sampler), ``routes`` (the routes and their auth). See
docs/live.md.
"""

from .feed import DEBOUNCE, HISTORY_S, STATS_TIMEOUT, LiveFeed
from .frames import ActorGroup, Row, Sample, Totals, TreeFrame
from .routes import MAX_INTERVAL, MIN_INTERVAL, routes
from .tree import MAX_CHILDREN, MAX_ROWS, cap_tree

__all__ = [
    "DEBOUNCE",
    "HISTORY_S",
    "MAX_CHILDREN",
    "MAX_INTERVAL",
    "MAX_ROWS",
    "MIN_INTERVAL",
    "STATS_TIMEOUT",
    "ActorGroup",
    "LiveFeed",
    "Row",
    "Sample",
    "Totals",
    "TreeFrame",
    "cap_tree",
    "routes",
]
