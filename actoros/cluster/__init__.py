"""actoros nodes on a Ray cluster: location-transparent refs, supervision across nodes.

The only package that imports ``ray`` (the optional extra ``cluster``). ``wire.py`` (frames and
message bodies), ``remote.py`` (remote refs and links) and ``node.py`` (one node's runtime) need
no Ray; ``process.py`` (the node process, the head's keepers) and ``cluster.py`` (the driver's
``Cluster``) do. See docs/cluster.md and docs/architecture.md ("Past one machine").
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from .remote import RemoteRef
from .spec import GroupBuilder, GroupSpec, NodeSpec
from .wire import NodeUnreachable, NotPortable, RemoteError

if TYPE_CHECKING:
    from .cluster import Cluster, connected, init_ray, local_cluster
    from .process import NodeLost

RAY_MISSING = "the cluster needs Ray: pip install -e '.[cluster]' (make setup installs it)"

_NEEDS_RAY = {
    "Cluster": "cluster",
    "connected": "cluster",
    "init_ray": "cluster",
    "local_cluster": "cluster",
    "NodeLost": "process",
}


def have_ray() -> bool:
    return importlib.util.find_spec("ray") is not None


def __getattr__(name: str) -> Any:
    module = _NEEDS_RAY.get(name)
    if module is None:
        raise AttributeError(f"module 'actoros.cluster' has no attribute {name!r}")
    if not have_ray():
        raise ImportError(RAY_MISSING)
    return getattr(importlib.import_module(f".{module}", __name__), name)


__all__ = [
    "RAY_MISSING",
    "Cluster",
    "GroupBuilder",
    "GroupSpec",
    "NodeLost",
    "NodeSpec",
    "NodeUnreachable",
    "NotPortable",
    "RemoteError",
    "RemoteRef",
    "connected",
    "have_ray",
    "init_ray",
    "local_cluster",
]
