"""Checks across fields, run on a config that decoded: names must refer to something real.

Each check yields every problem it finds (never stops at the first): agent names unique and
known wherever they are named (groups, rules, permissions, topics, workload); tools built-in,
declared user tools or ``module:function`` whose module can be found (without running it);
a rule has exactly one action and only uses what its agent may; no message is forwarded round
a loop of rule agents for ever (``delegation.py``); agent kinds have their parts; group names
are not the kernel's or, with agents in no group, the implicit group's; the state folder and
database files can be what they must be; a workload file exists and reads, and no task id
is given twice (inline or in the file); the gateway's
tokens are well formed and name known agents, and a gateway without tokens stays on loopback;
a cluster's nodes are unique, place each known group once and ask only for what Ray can give
(on this machine, when it starts Ray here), and Ray is installed when the backend is Ray.
"""

from __future__ import annotations

import difflib
import importlib.util
import ipaddress
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .delegation import delegation_cycles, describe
from .modules import missing_module
from .paths import database_problem, folder_problem
from .problems import ConfigError, Key, Problem, line_of, render_key
from .schema import (
    BUILTIN_TOOLS,
    RAY_ADDRESS,
    RAY_BUILTIN_RESOURCES,
    USER_TOOL,
    AgentConfig,
    ClusterConfig,
    Config,
    GatewayConfig,
    NodeConfig,
    Rule,
    Workload,
)
from .tools import malformed_message, taken_message, taken_tool_names
from .workload import load_workload_file

KERNEL_GROUP = "kernel"
"""The kernel's supervisor (``/kernel``): no group may take its name."""

IMPLICIT_GROUP = "agents"
"""The group agents that are in no group run in."""


def check(config: Config, lines: dict[Key, int]) -> Iterator[Problem]:
    """Every problem across fields, section by section, in file order within a section."""
    return _Checker(config, lines).run()


def known(names: Iterable[str], wrong: str) -> str:
    """ "(known: a, b, c)" — or, for long lists, the close matches only."""
    names = sorted(set(names))
    if not names:
        return "(none defined)"
    if len(names) <= 12:
        return f"(known: {', '.join(names)})"
    close = difflib.get_close_matches(wrong, names, n=3)
    return f"(did you mean: {', '.join(close)}?)" if close else f"({len(names)} known)"


class _Checker:
    def __init__(self, config: Config, lines: dict[Key, int]) -> None:
        self.config = config
        self.lines = lines
        self.agents = {agent.name for agent in config.agents}
        self.topics = {topic.name for topic in config.topics}
        self.tools = set(BUILTIN_TOOLS) | set(config.services.tools.user)
        self.missing: dict[str, str | None] = {}  # module -> why it cannot be found

    def run(self) -> Iterator[Problem]:
        yield from self.state()
        yield from self.user_tools()
        yield from self.agent_list()
        yield from self.delegation()
        yield from self.groups()
        yield from self.topic_list()
        if self.config.workload is not None:
            yield from self.workload(self.config.workload)
        if self.config.gateway is not None:
            yield from self.gateway(self.config.gateway)
        if self.config.inference is not None:
            yield from self.inference_args(self.config.inference.engine_args, ("inference",))
        if self.config.cluster is not None:
            yield from self.cluster(self.config.cluster)

    def problem(self, at: Key, message: str) -> Problem:
        return Problem(render_key(at), line_of(self.lines, at), message)

    # -- names -----------------------------------------------------------------------------

    def tool(self, at: Key, tool: str) -> Iterator[Problem]:
        if tool in self.tools:
            return
        if ":" in tool:
            if not USER_TOOL.match(tool):
                yield self.problem(at, malformed_message(tool))
            else:
                yield from self.tool_module(at, tool)
            return
        yield self.problem(at, f"unknown tool {tool!r} {known(self.tools, tool)}")

    def tool_module(self, at: Key, target: str) -> Iterator[Problem]:
        """The module of ``module:function`` must be importable (it is imported at start)."""
        module = target.partition(":")[0]
        missing = self.missing.setdefault(module, missing_module(module))
        if missing is not None:
            yield self.problem(
                at, f"user tool {target!r}: {missing} (install it, or run from its folder)"
            )

    def direct_tool_names(self) -> Iterator[Problem]:
        """An agent's ``module:function`` tool is registered under the function's name, which
        must not be a different user tool's (``tools.py``)."""
        for at, name, holder in taken_tool_names(self.config):
            yield self.problem(at, taken_message(name, holder))

    def agent(self, at: Key, name: str) -> Iterator[Problem]:
        if name not in self.agents:
            yield self.problem(at, f"unknown agent {name!r} {known(self.agents, name)}")

    # -- sections --------------------------------------------------------------------------

    def user_tools(self) -> Iterator[Problem]:
        for name, target in self.config.services.tools.user.items():
            at: Key = ("services", "tools", "user", name)
            if name in BUILTIN_TOOLS:
                yield self.problem(at, "shadows a built-in tool")
            if not USER_TOOL.match(target):
                yield self.problem(at, f"{target!r} is not 'module:function'")
            else:
                yield from self.tool_module(at, target)
        yield from self.direct_tool_names()

    def state(self) -> Iterator[Problem]:
        """The state folder must be (or be creatable as) a folder, the databases files."""
        system, services = self.config.system, self.config.services
        problem = folder_problem(Path(system.state_dir))
        if problem is not None:
            yield self.problem(("system", "state_dir"), problem)
        for name, db in (("scheduler", services.scheduler.db), ("threads", services.threads.db)):
            problem = None if db is None else database_problem(Path(db))
            if problem is not None:
                yield self.problem(("services", name, "db"), problem)

    def agent_list(self) -> Iterator[Problem]:
        first: dict[str, int] = {}
        for i, agent in enumerate(self.config.agents):
            here: Key = ("agents", i)
            if agent.name in first:
                yield self.problem(
                    (*here, "name"),
                    f"duplicate agent name {agent.name!r} (also agents[{first[agent.name]}])",
                )
            first.setdefault(agent.name, i)
            for j, tool in enumerate(agent.tools):
                yield from self.tool((*here, "tools", j), tool)
            yield from self.kind(agent, here)
            yield from self.permissions(agent, here)
            for j, rule in enumerate(agent.rules):
                yield from self.rule(agent, rule, (*here, "rules", j))

    def kind(self, agent: AgentConfig, here: Key) -> Iterator[Problem]:
        if agent.kind == "rule":
            if not agent.rules:
                yield self.problem((*here, "rules"), "a rule agent needs at least one rule")
            if agent.system_prompt:
                yield self.problem((*here, "system_prompt"), "only llm agents use a system prompt")
            return
        if agent.rules:
            yield self.problem((*here, "rules"), "only rule agents have rules")
        if self.config.inference is None:
            yield self.problem((*here, "kind"), "an llm agent needs an 'inference' section")
        elif not agent.permissions.inference:
            yield self.problem(
                (*here, "permissions", "inference"), "an llm agent needs inference permission"
            )
        if agent.tool_choice == "required":
            yield from self.tool_choice(agent, here)

    def tool_choice(self, agent: AgentConfig, here: Key) -> Iterator[Problem]:
        at: Key = (*here, "tool_choice")
        if not agent.tools and not agent.permissions.agents:
            yield self.problem(
                at, "'required' needs tools (or agents to ask): list some or use 'auto'"
            )
        elif agent.max_steps < 2:
            yield self.problem(
                at, "'required' needs max_steps >= 2 (a step to call, one to answer)"
            )
        elif not agent.constrain:
            yield self.problem(
                at, "'required' is enforced by the grammar: set constrain: true or use 'auto'"
            )

    def permissions(self, agent: AgentConfig, here: Key) -> Iterator[Problem]:
        perms = agent.permissions
        at: Key = (*here, "permissions")
        for j, tool in enumerate(perms.tools or ()):
            yield from self.tool((*at, "tools", j), tool)
        for j, name in enumerate(perms.agents or ()):
            if name != "*":
                yield from self.agent((*at, "agents", j), name)
        for j, topic in enumerate(perms.topics):
            if topic not in self.topics:
                yield self.problem(
                    (*at, "topics", j), f"unknown topic {topic!r} {known(self.topics, topic)}"
                )

    def rule(self, agent: AgentConfig, rule: Rule, at: Key) -> Iterator[Problem]:
        perms = agent.permissions
        actions = [
            a for a in ("reply", "forward", "tool", "submit") if getattr(rule, a) is not None
        ]
        if len(actions) != 1:
            found = ", ".join(actions) if actions else "none"
            yield self.problem(
                at, f"a rule needs exactly one action of reply, forward, tool, submit (got {found})"
            )
        if rule.forward is not None:
            yield from self.agent((*at, "forward"), rule.forward)
            if rule.forward == agent.name:
                yield self.problem((*at, "forward"), "an agent cannot forward to itself")
            elif perms.agents is not None and not {"*", rule.forward} & set(perms.agents):
                yield self.problem(
                    (*at, "forward"),
                    f"forwarding to {rule.forward!r} is not allowed by permissions.agents",
                )
        if rule.tool is not None:
            yield from self.tool((*at, "tool"), rule.tool)
            allowed = agent.tools if perms.tools is None else perms.tools
            if rule.tool not in allowed:
                where = "tools" if perms.tools is None else "permissions.tools"
                yield self.problem(
                    (*at, "tool"), f"tool {rule.tool!r} is not in this agent's {where}"
                )
        if rule.submit is not None and not perms.submit:
            yield self.problem((*at, "submit"), "submitting tasks needs permissions.submit: true")

    def groups(self) -> Iterator[Problem]:
        group_of: dict[str, str] = {}
        first: dict[str, int] = {}
        for i, group in enumerate(self.config.groups):
            here: Key = ("groups", i)
            if group.name in first:
                yield self.problem(
                    (*here, "name"),
                    f"duplicate group name {group.name!r} (also groups[{first[group.name]}])",
                )
            first.setdefault(group.name, i)
            if group.name == KERNEL_GROUP:
                yield self.problem(
                    (*here, "name"), f"the name {KERNEL_GROUP!r} is the kernel's (/kernel)"
                )
            if group.backoff.max and group.backoff.max < group.backoff.min:
                yield self.problem(
                    (*here, "backoff", "max"),
                    f"below backoff.min ({group.backoff.min:g}): raise it, or 0 for no cap",
                )
            if not group.children:
                yield self.problem((*here, "children"), "a group needs at least one child")
            for j, child in enumerate(group.children):
                if child not in self.agents:
                    yield from self.agent((*here, "children", j), child)
                elif child in group_of:
                    yield self.problem(
                        (*here, "children", j),
                        f"agent {child!r} is already in group {group_of[child]!r}",
                    )
                else:
                    group_of[child] = group.name
        implicit = [i for i, g in enumerate(self.config.groups) if g.name == IMPLICIT_GROUP]
        ungrouped = [a.name for a in self.config.agents if a.name not in group_of]
        if implicit and ungrouped:
            yield self.problem(
                ("groups", implicit[0], "name"),
                f"agents in no group ({', '.join(ungrouped)}) run in a group named "
                f"{IMPLICIT_GROUP!r}: add them to a group, or rename this one",
            )

    def delegation(self) -> Iterator[Problem]:
        agents = self.config.agents
        for cycle in delegation_cycles(agents):
            first = cycle.hops[0]
            yield self.problem(
                ("agents", first.agent, "rules", first.rule, "forward"),
                f"delegation cycle {cycle.names(agents)}: {describe(cycle.message)} is "
                "forwarded round it for ever (change a rule's condition or target)",
            )

    def topic_list(self) -> Iterator[Problem]:
        seen: set[str] = set()
        for i, topic in enumerate(self.config.topics):
            here: Key = ("topics", i)
            if topic.name in seen:
                yield self.problem((*here, "name"), f"duplicate topic name {topic.name!r}")
            seen.add(topic.name)
            for j, name in enumerate(topic.subscribers):
                yield from self.agent((*here, "subscribers", j), name)

    def workload(self, workload: Workload) -> Iterator[Problem]:
        here: Key = ("workload",)
        if workload.tasks and workload.file is not None:
            yield self.problem(here, "give either 'tasks' or 'file', not both")
        if workload.agent is not None:
            yield from self.agent((*here, "agent"), workload.agent)
        ids: dict[str, int] = {}  # task id -> the index that gave it first
        for i, task in enumerate(workload.tasks):
            at: Key = (*here, "tasks", i)
            if task.id is not None:
                if task.id in ids:
                    j = ids[task.id]
                    line = line_of(self.lines, (*here, "tasks", j, "id"))
                    also = f"workload.tasks[{j}]" + (f", line {line}" if line else "")
                    yield self.problem((*at, "id"), f"duplicate task id {task.id!r} (also {also})")
                ids.setdefault(task.id, i)
            if task.agent is not None:
                yield from self.agent((*at, "agent"), task.agent)
            elif workload.agent is None:
                yield self.problem(at, "no agent: set the task's 'agent' or 'workload.agent'")
        if workload.file is not None:
            yield from self.workload_file(workload, Path(workload.file))

    def workload_file(self, workload: Workload, path: Path) -> Iterator[Problem]:
        at: Key = ("workload", "file")
        try:
            tasks = load_workload_file(path)
        except FileNotFoundError:
            yield self.problem(at, f"no such file: {path}")
            return
        except ConfigError as exc:
            for line in exc.lines():
                yield self.problem(at, line)
            return
        for task in tasks:  # one problem per kind is enough: the file may be long
            if task.agent is None and workload.agent is None:
                yield self.problem(at, f"{path}: a task without 'agent' and no 'workload.agent'")
                return
            if task.agent is not None and task.agent not in self.agents:
                yield self.problem(at, f"{path}: unknown agent {task.agent!r}")
                return

    def inference_args(self, engine_args: dict[str, Any], here: Key) -> Iterator[Problem]:
        """The engine settings with a key of their own are set there, in one place."""
        for arg, key in (("enable_prefix_caching", "prefix_caching"), ("block_size", "block_size")):
            if arg in engine_args:
                yield self.problem(
                    (*here, "engine_args", arg),
                    f"set inference.{key} instead of engine_args.{arg}",
                )

    def cluster(self, cluster: ClusterConfig) -> Iterator[Problem]:
        here: Key = ("cluster",)
        if not RAY_ADDRESS.match(cluster.address):
            yield self.problem(
                (*here, "address"),
                f"{cluster.address!r} is not 'local', 'auto' or 'ray://host:port'",
            )
        if cluster.backend == "local":
            if cluster.nodes:
                yield self.problem(
                    (*here, "nodes"),
                    "nodes are only used with backend: ray (set cluster.backend: ray, "
                    "or remove the nodes)",
                )
            return
        if not ray_installed():
            yield self.problem(
                (*here, "backend"), "ray needs Ray: pip install -e '.[cluster]' (or `make setup`)"
            )
        if not cluster.nodes:
            yield self.problem(
                (*here, "nodes"),
                "backend ray needs at least one node; list the nodes and the groups each "
                "runs (the first node is the head)",
            )
        yield from self.nodes(cluster.nodes)
        if cluster.address == "local":
            yield from self.local_resources(cluster.nodes)

    def nodes(self, nodes: tuple[NodeConfig, ...]) -> Iterator[Problem]:
        groups = {group.name for group in self.config.groups}
        first: dict[str, int] = {}
        node_of: dict[str, str] = {}  # group -> the node it runs on
        for i, node in enumerate(nodes):
            here: Key = ("cluster", "nodes", i)
            if node.name in first:
                yield self.problem(
                    (*here, "name"),
                    f"duplicate node name {node.name!r} (also nodes[{first[node.name]}])",
                )
            first.setdefault(node.name, i)
            for j, group in enumerate(node.groups):
                at: Key = (*here, "groups", j)
                if group not in groups:
                    yield self.problem(at, f"unknown group {group!r} {known(groups, group)}")
                elif group not in node_of:
                    node_of[group] = node.name
                elif node_of[group] == node.name:
                    yield self.problem(at, f"group {group!r} is listed twice on this node")
                else:
                    yield self.problem(
                        at,
                        f"group {group!r} is on two nodes, {node_of[group]!r} and "
                        f"{node.name!r}: a group runs on one node, remove it from one",
                    )
            if node.inference and self.config.inference is None:
                yield self.problem(
                    (*here, "inference"), "a node's inference actor needs an 'inference' section"
                )
            if node.engine_args and not node.inference:
                yield self.problem(
                    (*here, "engine_args"), "engine_args are only used with inference: true"
                )
            yield from self.inference_args(node.engine_args, here)

    def local_resources(self, nodes: tuple[NodeConfig, ...]) -> Iterator[Problem]:
        """``address: local`` starts Ray on this machine: it has this machine's CPUs and GPUs,
        and no custom resource; a node asking for more would wait for ever to be placed."""
        for i, node in enumerate(nodes):
            for name in node.resources:
                if name not in RAY_BUILTIN_RESOURCES:
                    yield self.problem(
                        ("cluster", "nodes", i, "resources", name),
                        f"custom resource {name!r}: a Ray started here (address: local) has "
                        "none; join a cluster that has it (cluster.address) or remove it",
                    )
        for name, have, what in (("CPU", local_cpus(), "CPUs"), ("GPU", local_gpus(), "GPUs")):
            total = 0.0
            for i, node in enumerate(nodes):
                total += node.resources.get(name, 0.0)
                if total > have + 1e-9:  # at the node that asks for one too many
                    yield self.problem(
                        ("cluster", "nodes", i, "resources", name),
                        f"the nodes ask for {total:g} {what} in all and this machine has {have} "
                        f"(address: local starts Ray here): lower the nodes' {name}, or join "
                        "a cluster (cluster.address)",
                    )
                    break

    def gateway(self, gateway: GatewayConfig) -> Iterator[Problem]:
        here: Key = ("gateway",)
        for i, group in enumerate(self.config.groups):
            if group.name == "gateway":
                yield self.problem(
                    ("groups", i, "name"), "the name 'gateway' is the gateway actor's (/gateway)"
                )
        if not gateway.tokens and not is_loopback(gateway.host):
            yield self.problem(
                (*here, "host"),
                f"without tokens the gateway listens on 127.0.0.1 only (host is "
                f"{gateway.host!r}): add gateway.tokens or use host 127.0.0.1",
            )
        if gateway.allow_raw_model and self.config.inference is None:
            yield self.problem(
                (*here, "allow_raw_model"), "the raw model needs an 'inference' section"
            )
        names: dict[str, int] = {}
        secrets: dict[str, int] = {}
        for i, token in enumerate(gateway.tokens):
            at: Key = (*here, "tokens", i)
            if (token.token is None) == (token.token_env is None):
                yield self.problem(at, "give exactly one of 'token' and 'token_env'")
            if token.name in names:
                first = names[token.name]
                yield self.problem(
                    (*at, "name"), f"duplicate token name {token.name!r} (also tokens[{first}])"
                )
            names.setdefault(token.name, i)
            if token.token is not None:
                if token.token in secrets:
                    yield self.problem(
                        (*at, "token"), f"the same token as tokens[{secrets[token.token]}]"
                    )
                secrets.setdefault(token.token, i)
            if not token.agents:
                yield self.problem((*at, "agents"), 'no agents: name some, or ["*"] for all')
            for j, name in enumerate(token.agents):
                if name != "*":
                    yield from self.agent((*at, "agents", j), name)


def ray_installed() -> bool:
    """Whether the ``ray`` package can be imported (found, not imported: importing it is slow)."""
    try:
        return importlib.util.find_spec("ray") is not None
    except ValueError:  # a ``ray`` module without a spec in sys.modules: it is there
        return True


def local_cpus() -> int:
    """The CPUs of this machine, as a Ray started here counts them."""
    return os.cpu_count() or 1


def local_gpus(dev: Path = Path("/dev")) -> int:
    """The GPUs a Ray started here sees: those ``CUDA_VISIBLE_DEVICES`` names when it is set
    (``""`` or ``-1``: none), else the NVIDIA device files (``/dev/nvidia0``, ...)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        count = 0
        for device in visible.split(","):
            if not device.strip() or device.strip().startswith("-"):
                break  # CUDA stops at the first entry that is not a device
            count += 1
        return count
    return len(list(dev.glob("nvidia[0-9]*")))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False
