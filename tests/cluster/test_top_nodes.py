"""What ``actoros top`` and the live page read of a system split over two nodes:
``System.snapshot()`` lists the head's actors and the ``workers`` node's, each with its node.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from app.configs import fake_config

from actoros.app import start_system
from actoros.config import ClusterConfig, Config, NodeConfig

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]


def split(config: Config) -> Config:
    """The example's ``workers`` group on a node of its own (as tests/cluster/test_app.py)."""
    nodes = (
        NodeConfig(name="head", groups=("front",), resources={"CPU": 0.0}),
        NodeConfig(name="workers", groups=("workers",), resources={"CPU": 0.5}),
    )
    cluster = ClusterConfig(backend="ray", address="auto", heartbeat=0.5, nodes=nodes)
    return msgspec.structs.replace(config, cluster=cluster)


async def test_the_snapshot_of_a_split_system_names_each_actors_node(
    ray_cluster: str, tmp_path: Path
) -> None:
    system = await start_system(split(fake_config(tmp_path)))
    try:
        rows = await system.snapshot()
    finally:
        await system.shutdown()
    by_node: dict[str | None, list[str]] = {}
    for row in rows:
        by_node.setdefault(row.node, []).append(row.path)
    assert set(by_node) == {"head", "workers"}
    assert by_node["workers"] and all(p.startswith("/workers") for p in by_node["workers"])
    assert "/kernel" in by_node["head"] and "/cluster" in by_node["head"]
    assert not any(p.startswith("/workers") for p in by_node["head"])
