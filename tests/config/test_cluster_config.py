"""The ``cluster:`` section: defaults, and every mistake as one problem line with its YAML
path and line — nodes and the groups they run, resources Ray cannot give, Ray itself."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from actoros.config import ClusterConfig, ConfigError, NodeConfig, checks, parse_config
from actoros.config.checks import local_gpus

pytestmark = pytest.mark.timeout(30)

GROUPS = """\
inference: {engine: fake}
agents:
  - {name: echo, kind: rule, rules: [{reply: hi}]}
  - {name: faq, kind: llm}
groups:
  - {name: front, children: [echo]}
  - {name: workers, children: [faq]}
"""

NODES = """\
cluster:
  backend: ray
  nodes:
    - {name: front, groups: [front], resources: {CPU: 1}, inference: true}
    - {name: workers, groups: [workers], resources: {CPU: 1}}
"""


@pytest.fixture(autouse=True)
def machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray installed, 8 CPUs and no GPU: what the checks see does not depend on the machine
    that runs the tests."""
    monkeypatch.setattr(checks, "ray_installed", lambda: True)
    monkeypatch.setattr(checks, "local_cpus", lambda: 8)
    monkeypatch.setattr(checks, "local_gpus", lambda: 0)


def problems(text: str, head: str = GROUPS) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(head + textwrap.dedent(text), source="c.yaml")
    return [line.removeprefix("c.yaml:") for line in caught.value.lines()]


def test_without_a_cluster_section_there_is_no_cluster() -> None:
    assert parse_config(GROUPS).cluster is None
    config = parse_config(GROUPS + "cluster: {}\n")
    assert config.cluster == ClusterConfig()
    cluster = config.cluster
    assert (cluster.backend, cluster.address, cluster.heartbeat) == ("local", "local", 1.0)
    assert (cluster.pickle, cluster.nodes) == (False, ())


def test_a_full_cluster_section_decodes() -> None:
    config = parse_config(
        GROUPS
        + textwrap.dedent(
            """\
            cluster:
              backend: ray
              address: local
              heartbeat: 0.5
              pickle: true
              nodes:
                - name: front
                  groups: [front]
                  resources: {CPU: 1}
                  inference: true
                  engine_args: {tensor_parallel_size: 2}
                - name: workers
                  groups: [workers]
                  resources: {CPU: 0.5, GPU: 0, memory: 4.0e+9}
                  inference: false
                  engine_args: {}
                - {name: spare}
            """
        )
    )
    assert config.cluster == ClusterConfig(
        backend="ray",
        heartbeat=0.5,
        pickle=True,
        nodes=(
            NodeConfig(
                name="front",
                groups=("front",),
                inference=True,
                engine_args={"tensor_parallel_size": 2},
            ),
            NodeConfig(
                name="workers",
                groups=("workers",),
                resources={"CPU": 0.5, "GPU": 0.0, "memory": 4e9},
            ),
            NodeConfig(name="spare"),
        ),
    )
    spare = config.cluster.nodes[2]
    assert (spare.groups, spare.resources, spare.inference, spare.engine_args) == (
        (),
        {"CPU": 1.0},
        False,
        {},
    )


def test_backend_ray_needs_nodes_and_nodes_need_backend_ray() -> None:
    assert problems("cluster: {backend: ray}\n") == [
        "8: cluster.nodes: backend ray needs at least one node; list the nodes and the groups "
        "each runs (the first node is the head)"
    ]
    assert problems("cluster:\n  nodes: [{name: front, groups: [front]}]\n") == [
        "9: cluster.nodes: nodes are only used with backend: ray (set cluster.backend: ray, "
        "or remove the nodes)"
    ]


def test_a_node_runs_groups_of_the_groups_list() -> None:
    lines = problems(
        """\
        cluster:
          backend: ray
          nodes:
            - {name: front, groups: [front, agents]}
            - {name: workers, groups: [wrokers]}
        """
    )
    assert lines == [
        "11: cluster.nodes[0].groups[1]: unknown group 'agents' (known: front, workers)",
        "12: cluster.nodes[1].groups[0]: unknown group 'wrokers' (known: front, workers)",
    ]


def test_a_group_runs_on_one_node() -> None:
    lines = problems(
        """\
        cluster:
          backend: ray
          nodes:
            - {name: front, groups: [front, workers]}
            - {name: workers, groups: [workers, front, front]}
        """
    )
    assert lines == [
        "12: cluster.nodes[1].groups[0]: group 'workers' is on two nodes, 'front' and "
        "'workers': a group runs on one node, remove it from one",
        "12: cluster.nodes[1].groups[1]: group 'front' is on two nodes, 'front' and "
        "'workers': a group runs on one node, remove it from one",
        "12: cluster.nodes[1].groups[2]: group 'front' is on two nodes, 'front' and "
        "'workers': a group runs on one node, remove it from one",
    ]
    assert problems(
        "cluster: {backend: ray, nodes: [{name: a, groups: [front, workers, front]}]}\n"
    ) == ["8: cluster.nodes[0].groups[2]: group 'front' is listed twice on this node"]


def test_node_names_are_unique() -> None:
    lines = problems(
        """\
        cluster:
          backend: ray
          nodes:
            - {name: a, groups: [front]}
            - {name: b}
            - {name: a, groups: [workers]}
        """
    )
    assert lines == ["13: cluster.nodes[2].name: duplicate node name 'a' (also nodes[0])"]


def test_a_local_ray_has_this_machines_cpus_and_gpus_and_no_custom_resource(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(checks, "local_cpus", lambda: 2)
    lines = problems(
        """\
        cluster:
          backend: ray
          nodes:
            - {name: a, groups: [front], resources: {CPU: 1, memory: 1.0e+9}}
            - {name: b, groups: [workers], resources: {CPU: 1, GPU: 1, accelerator_h200: 1}}
            - {name: c, resources: {CPU: 0.5}}
            - {name: d}
        """
    )
    assert lines == [
        "12: cluster.nodes[1].resources.accelerator_h200: custom resource 'accelerator_h200': "
        "a Ray started here (address: local) has none; join a cluster that has it "
        "(cluster.address) or remove it",
        "13: cluster.nodes[2].resources.CPU: the nodes ask for 2.5 CPUs in all and this "
        "machine has 2 (address: local starts Ray here): lower the nodes' CPU, or join a "
        "cluster (cluster.address)",
        "12: cluster.nodes[1].resources.GPU: the nodes ask for 1 GPUs in all and this "
        "machine has 0 (address: local starts Ray here): lower the nodes' GPU, or join a "
        "cluster (cluster.address)",
    ]
    fits = "cluster:\n  backend: ray\n  nodes:\n    - {name: a, resources: {CPU: 2}}\n"
    assert parse_config(GROUPS + fits + "    - {name: b, resources: {CPU: 0}}\n").cluster


@pytest.mark.parametrize("address", ["auto", "ray://head:10001", "ray://10.0.0.7:10001"])
def test_the_resources_of_a_cluster_joined_are_not_checked_here(address: str) -> None:
    config = parse_config(
        GROUPS
        + textwrap.dedent(
            f"""\
            cluster:
              backend: ray
              address: '{address}'
              nodes:
                - {{name: a, resources: {{CPU: 64, GPU: 8, accelerator_h200: 8}}}}
                - {{name: b, resources: {{CPU: 64}}}}
            """
        )
    )
    assert config.cluster is not None and config.cluster.address == address


def test_local_gpus_counts_the_visible_devices(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "null"):
        (tmp_path / name).touch()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert local_gpus(tmp_path) == 2
    for visible, count in [("0,1,2", 3), ("GPU-3f2a", 1), ("", 0), ("-1", 0), ("0,-1,1", 1)]:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        assert local_gpus(tmp_path) == count, visible


def test_backend_ray_needs_ray_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "ray_installed", lambda: False)
    assert problems(NODES) == [
        "9: cluster.backend: ray needs Ray: pip install -e '.[cluster]' (or `make setup`)"
    ]
    assert parse_config(GROUPS + "cluster: {backend: local}\n").cluster == ClusterConfig()


def test_an_inference_node_needs_an_inference_section() -> None:
    no_inference = GROUPS.replace("inference: {engine: fake}\n", "").replace(
        "{name: faq, kind: llm}", "{name: faq, kind: rule, rules: [{reply: ok}]}"
    )
    assert problems(NODES, head=no_inference) == [
        "10: cluster.nodes[0].inference: a node's inference actor needs an 'inference' section"
    ]


def test_an_engine_per_node_is_valid() -> None:
    text = """        cluster:
          backend: ray
          nodes:
            - {name: a, groups: [front]}
            - {name: b, groups: [workers], inference: true, engine_args: {max_model_len: 1024}}
        """
    cluster = parse_config(GROUPS + textwrap.dedent(text)).cluster
    assert cluster is not None
    assert [(n.inference, n.engine_args) for n in cluster.nodes] == [
        (False, {}),
        (True, {"max_model_len": 1024}),
    ]


def test_engine_args_are_for_a_node_that_runs_inference() -> None:
    lines = problems(
        """\
        cluster:
          backend: ray
          nodes:
            - {name: a, groups: [front], inference: true, engine_args: {block_size: 32}}
            - {name: b, engine_args: {tensor_parallel_size: 2}}
        """
    )
    assert lines == [
        "11: cluster.nodes[0].engine_args.block_size: set inference.block_size instead of "
        "engine_args.block_size",
        "12: cluster.nodes[1].engine_args: engine_args are only used with inference: true",
    ]


@pytest.mark.parametrize(
    "address",
    ["local", "auto", "ray://head:10001", "ray://10.0.0.7:10001", "ray://[::1]:10001"],
)
def test_the_three_forms_of_an_address(address: str) -> None:
    text = GROUPS + f"cluster: {{address: '{address}'}}\n"
    assert parse_config(text).cluster == ClusterConfig(address=address)


@pytest.mark.parametrize(
    "address", ["remote", "ray://head", "head:10001", "http://head:10001", "ray://:1", "Auto"]
)
def test_any_other_address_names_the_three_forms(address: str) -> None:
    assert problems(f"cluster: {{address: '{address}'}}\n") == [
        f"8: cluster.address: {address!r} is not 'local', 'auto' or 'ray://host:port'"
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "cluster: {heartbeat: 0}\n",
            "8: cluster.heartbeat: 0 is out of range (allowed: above 0, up to 60)",
        ),
        (
            "cluster: {heartbeat: 61}\n",
            "8: cluster.heartbeat: 61 is out of range (allowed: above 0, up to 60)",
        ),
        (
            "cluster:\n  nodes:\n    - name: a\n      resources: {GPU: 1, CPU: -1}\n",
            "11: cluster.nodes[0].resources.CPU: -1 is out of range "
            "(allowed: 0 to 1000000000000000)",
        ),
        (
            "cluster:\n  nodes:\n    - name: a\n      resources:\n        CPU: .inf\n",
            "12: cluster.nodes[0].resources.CPU: .inf is out of range "
            "(allowed: 0 to 1000000000000000)",
        ),
        (
            "cluster: {backend: k8s}\n",
            "8: cluster.backend: Invalid enum value 'k8s'",
        ),
        (
            "cluster: {nodes: [{groups: [front]}]}\n",
            "8: cluster.nodes[0]: missing required key 'name'",
        ),
        (
            "cluster: {nodes: [{name: 'a b'}]}\n",
            "8: cluster.nodes[0].name: Expected 'str' matching regex '^[A-Za-z_][\\\\w-]*$'",
        ),
    ],
)
def test_bad_values_are_decode_problems(text: str, line: str) -> None:
    assert problems(text) == [line]


def test_an_unknown_key_lists_the_known_ones() -> None:
    assert problems("cluster: {backend: ray, heartbeats: 2}\n") == [
        "8: cluster.heartbeats: unknown key (known: address, backend, heartbeat, "
        "max_restarts, nodes, pickle, within)"
    ]
    assert problems("cluster:\n  nodes:\n    - {name: a, resource: {CPU: 1}}\n") == [
        "10: cluster.nodes[0].resource: unknown key (known: engine_args, groups, inference, "
        "name, resources, throughput)"
    ]


def test_a_nodes_throughput_has_a_range() -> None:
    lines = problems(
        """        cluster:
          backend: ray
          nodes:
            - {name: a, groups: [front], throughput: 0}
        """
    )
    assert lines == ["11: cluster.nodes[0].throughput: 0 is out of range (allowed: 1 to 10000)"]
