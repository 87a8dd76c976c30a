"""The local Ray cluster ``actoros bench cluster`` runs on: two Ray nodes of one CPU each.

``ray.cluster_utils.Cluster`` starts a head and a second Ray node on this machine (two
raylets, as the cluster tests do), so two node processes of one CPU each land on different
Ray nodes. Ray's worker processes inherit this process's environment at that moment: they get
this very actoros first on their ``PYTHONPATH`` (``child_env``), so they import the bench's
actors from the same checkout. Ray itself is started by ``actoros.cluster.local_cluster``
(only ``cluster/`` imports Ray).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
from collections.abc import Iterator

from .._common import BenchError, child_env

RAY_NODES = 2  # Ray nodes of RAY_NODE_CPUS each
RAY_NODE_CPUS = 1


def ray_missing() -> str | None:
    """Why the cluster benchmark cannot run here, or ``None``."""
    from actoros.cluster import RAY_MISSING, have_ray

    return None if have_ray() else RAY_MISSING


@contextlib.contextmanager
def local_ray() -> Iterator[str]:
    """A fresh local Ray cluster, this process connected to it (its address); both stopped
    on the way out. ``BenchError`` if Ray is missing or this process is already connected."""
    if (why := ray_missing()) is not None:
        raise BenchError(f"actoros bench cluster: {why}")
    from actoros.cluster import connected, local_cluster

    if connected():
        raise BenchError("actoros bench cluster: this process is already connected to Ray")
    # the nodes' own logs (a warning per kill, among others) stay in Ray's session folder
    with (
        _this_actoros_first(),
        local_cluster(RAY_NODES, RAY_NODE_CPUS, log_to_driver=False) as address,
    ):
        yield address


@contextlib.contextmanager
def _this_actoros_first() -> Iterator[None]:
    """This actoros first on ``PYTHONPATH`` while Ray starts the processes that inherit it."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = child_env()["PYTHONPATH"]
    try:
        yield
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


def ray_version() -> str:
    return importlib.metadata.version("ray")
