"""One Ray cluster for every cluster test: ``ray.cluster_utils.Cluster``, two Ray nodes of one
CPU each on loopback (starting Ray costs seconds, so it starts once per session)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    ray = pytest.importorskip("ray", reason="the cluster extra is not installed (make setup)")
    from ray import cluster_utils

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # the nodes' processes import the tests' actors under the names pytest gave them: Ray's
    # raylets start them with the environment they were started with, so PYTHONPATH names
    # tests/ while they start, and only then (the other tests' processes must not see it)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "tests"), str(ROOT), saved or "") if p
    )
    try:
        cluster = cluster_utils.Cluster(
            initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
        )
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, include_dashboard=False, logging_level="warning")
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    try:
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.shutdown()
