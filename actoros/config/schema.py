"""The ``config.yaml`` schema: one frozen msgspec Struct per section.

Every Struct forbids unknown keys and has a default wherever one makes sense, so a config says
only what differs. Names that refer to other parts (agents in groups, tools of agents, ...)
are plain strings here; ``checks.py`` verifies them after decoding.

Every number has a range that a working system stays far inside (``.inf``, ``.nan`` and
``1e30`` are refused: a million workers or a billion-entry mailbox is a typo, not a plan);
a value outside it is a problem line that states the range.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

from actoros.core import Backoff as CoreBackoff

BUILTIN_TOOLS = ("calculator", "clock", "kv_get", "kv_put")
"""Tools every system has (the tool service registers them)."""

USER_TOOL = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
"""A user tool: ``package.module:function``."""

NAME = re.compile(r"^[A-Za-z_][\w-]*$")
"""Agent, group and topic names: they become actor names and paths (``/agents/router``)."""

DAY = 86_400.0
"""The longest timeout or delay, in seconds; ``.inf`` is never a valid time."""

RAY_ADDRESS = re.compile(
    r"^(local|auto|ray://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):\d{1,5})$"
)
"""Where a Ray cluster is: ``local`` (start one in this process), ``auto`` (join the one
running on this machine) or ``ray://host:port`` (a Ray client address)."""

RAY_BUILTIN_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")
"""The resources every Ray node has; any other key is a custom resource of a cluster."""


Positive = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
# ^ no upper bound: a field needs one too (tests/config/test_decoding.py checks every number)
Seconds = Annotated[float, msgspec.Meta(ge=0, le=DAY)]
Timeout = Annotated[float, msgspec.Meta(gt=0, le=DAY)]
Priority = Annotated[int, msgspec.Meta(ge=-1_000_000_000, le=1_000_000_000)]
Bytes = Annotated[int, msgspec.Meta(ge=1, le=1 << 30)]
Name = Annotated[str, msgspec.Meta(pattern=NAME.pattern, max_length=100)]


class _Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of every config Struct: unknown keys are errors, values are immutable."""


class SystemConfig(_Section, frozen=True):
    """``system:`` — the ActorSystem itself.

    ``name`` names the system (logs, the root of actor paths); ``log_level`` / ``log_format``
    configure structlog (``auto``: console on a terminal, JSON lines otherwise); ``state_dir``
    holds the SQLite files (task journal, threads, key-value store), created when needed.
    """

    name: Name = "actoros"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["auto", "console", "json"] = "auto"
    state_dir: str = ".actoros"


class InferenceConfig(_Section, frozen=True):
    """``inference:`` — the one inference actor and its engine.

    ``engine`` is ``vllm`` (a real model, GPU or CPU) or ``fake`` (deterministic, instant, no
    model). ``model`` is a model name known to ``actoros model pull``, a local folder or a
    Hugging Face id (``None``: the CPU default model). ``engine_args`` go to the engine's
    constructor unchanged (for vllm: ``AsyncEngineArgs`` fields such as ``max_model_len``;
    for fake: ``token_delay``, ``max_model_len``, ...). Admission: at most ``max_in_flight``
    requests inside the engine (``None``: the engine's ``max_num_seqs``), at most
    ``max_waiting`` queued behind them before new requests are refused with ``Overloaded``.

    vLLM's automatic prefix caching: with ``prefix_caching`` on, requests that begin with the
    same tokens share their KV cache, so a shared system prompt is prefilled once. It hits
    only on *full* blocks of ``block_size`` tokens and only on a byte-identical prefix: a
    600-token shared prompt with 128-token blocks reuses 512 tokens. ``block_size``: ``None``
    is vLLM's default (128 tokens on CPU, 16 on GPU); on CPU vLLM prefers a multiple of 32.
    They are the engine's ``enable_prefix_caching`` and ``block_size``, set here, not in
    ``engine_args``. (The fake engine has no cache and ignores both.)
    """

    engine: Literal["vllm", "fake"] = "vllm"
    model: str | None = None
    engine_args: dict[str, Any] = {}
    max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None
    max_waiting: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 4096
    prefix_caching: bool = True
    block_size: Annotated[int, msgspec.Meta(ge=1, le=4096)] | None = None


class SchedulerConfig(_Section, frozen=True):
    """``services.scheduler:`` — the durable task queue and its pool of worker actors.

    ``workers`` worker actors take tasks in ``policy`` order (``fifo``, or ``priority``: lower
    value first, FIFO within a value). ``db`` is the SQLite journal (default:
    ``<state_dir>/scheduler.sqlite``); unfinished tasks in it are resumed on the next run.
    """

    workers: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 4
    policy: Literal["fifo", "priority"] = "fifo"
    db: str | None = None


class ThreadsConfig(_Section, frozen=True):
    """``services.threads:`` — the conversation thread store.

    ``db`` is its SQLite file (default: ``<state_dir>/threads.sqlite``). ``context_budget``
    caps the tokens of a prompt built from a thread (``None``: the model's context length);
    older turns beyond it are folded into a running summary. ``keep_recent`` turns are always
    kept verbatim. ``max_message_bytes``: the largest message a thread stores (UTF-8 bytes);
    a larger one is refused with an error naming its size and the limit.
    """

    db: str | None = None
    context_budget: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] | None = None
    keep_recent: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 4
    max_message_bytes: Bytes = 1 << 20


class ToolsConfig(_Section, frozen=True):
    """``services.tools:`` — user tools beside the built-ins.

    ``user`` maps a tool name to the Python callable that implements it, written
    ``package.module:function`` (imported when the system starts). Agents may also list a
    ``module:function`` string directly in their ``tools``. ``timeout``: seconds a call may
    take. ``threads``: the pool that runs sync user tools, apart from the kernel's own threads;
    a call waiting for a free thread still ends at its timeout.
    """

    user: dict[str, str] = {}
    timeout: Timeout = 30.0
    threads: Annotated[int, msgspec.Meta(ge=1, le=256)] = 8


class KVConfig(_Section, frozen=True):
    """``services.kv:`` — the key-value store (``<state_dir>/kv.sqlite``).

    ``max_value_bytes``: the largest value ``kv_put`` stores (its JSON, in bytes); a larger
    one is refused with an error naming its size and the limit.
    """

    max_value_bytes: Bytes = 1 << 20


class ServicesConfig(_Section, frozen=True):
    """``services:`` — the kernel services supervised under ``/kernel``."""

    scheduler: SchedulerConfig = SchedulerConfig()
    threads: ThreadsConfig = ThreadsConfig()
    tools: ToolsConfig = ToolsConfig()
    kv: KVConfig = KVConfig()


class SubmitAction(_Section, frozen=True):
    """A task a rule submits to the scheduler: ``Task(kind, payload, priority)``."""

    kind: str
    payload: Any = None
    priority: Priority = 0


class Rule(_Section, frozen=True):
    """One rule of a ``rule`` agent: a condition on the message, then exactly one action.

    Condition: every ``match`` field equals its value and every ``contains`` field contains
    its text (case-insensitive). The incoming message is seen as a mapping of fields (a plain
    text message is ``{text: ...}``). No condition matches everything (a catch-all rule).
    Rules are tried in order; the first that matches acts.

    Actions (exactly one): ``reply`` with a text; ``forward`` the message to another agent
    (its reply is the reply); call ``tool`` with ``args``; ``submit`` a task to the scheduler.
    """

    match: dict[str, str | int | float | bool | None] = {}
    contains: dict[str, str] = {}
    reply: str | None = None
    forward: str | None = None
    tool: str | None = None
    args: dict[str, Any] = {}
    submit: SubmitAction | None = None


class Permissions(_Section, frozen=True):
    """What an agent may do; every syscall is checked against it (a denial is an error reply).

    ``tools``: tools it may call (``None``: exactly the agent's ``tools``). ``agents``: agents
    it may message (``None``: those its rules forward to, none for an llm agent; ``"*"``: any).
    ``topics``: topics it may publish to. ``inference``: whether it may call the model.
    ``submit``: whether it may submit scheduler tasks.
    """

    tools: tuple[str, ...] | None = None
    agents: tuple[str, ...] | None = None
    topics: tuple[str, ...] = ()
    inference: bool = True
    submit: bool = False


class AgentConfig(_Section, frozen=True):
    """One entry of ``agents:``.

    ``kind``: ``rule`` (decides by ``rules``) or ``llm`` (``system_prompt`` + its thread →
    the inference actor → tool calls → reply, at most ``max_steps`` model calls per message,
    sampling with ``temperature`` and ``max_tokens``). ``tools`` it can use, ``permissions``
    for its syscalls, ``restart`` policy under its supervisor (OTP: ``permanent`` always
    restarts, ``transient`` only after a crash, ``temporary`` never). ``mailbox`` bounds its
    mailbox (``None``: unbounded). ``constrain``: an llm agent's model output is held to its
    tool-call protocol by the engine (structured outputs), when the engine can; ``false``:
    free text, parsed and retried once when malformed. Two more rules of a constrained
    agent's grammar: ``tool_choice: required`` — the first step of each turn must call a tool
    (or ask an agent), as OpenAI's ``tool_choice``; ``optional_arguments: false`` — a tool
    call may give only the tool's required arguments (the others keep their defaults; small
    models invent values for every argument offered).
    """

    name: Name
    kind: Literal["rule", "llm"]
    system_prompt: str = ""
    tools: tuple[str, ...] = ()
    permissions: Permissions = Permissions()
    restart: Literal["permanent", "transient", "temporary"] = "permanent"
    rules: tuple[Rule, ...] = ()
    max_steps: Annotated[int, msgspec.Meta(ge=1, le=1_000)] = 4
    temperature: Annotated[float, msgspec.Meta(ge=0, le=10)] = 0.0
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 256
    mailbox: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] | None = None
    constrain: bool = True
    tool_choice: Literal["auto", "required"] = "auto"
    optional_arguments: bool = True


class Backoff(CoreBackoff, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Delay before restart n: ``min(max, min * 2**(n-1))``, ± ``jitter`` (a fraction).

    It is the core's ``Backoff`` (a group's supervisor takes it as it is), decoded as a
    config section: unknown keys are errors and each value has its range.
    """

    min: Seconds = 0.0
    max: Seconds = 0.0
    jitter: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0

    def __post_init__(self) -> None:
        # a max below min is a problem line of checks.py (naming the key and the fix, beside
        # the config's other problems), not a decoding error; the ranges are checked above
        if not self.max or self.max >= self.min:
            super().__post_init__()


class GroupConfig(_Section, frozen=True):
    """One entry of ``groups:`` — a supervisor over some agents (``children``, by name).

    ``strategy`` as in OTP; more than ``max_restarts`` restarts within ``within`` seconds and
    the group gives up (its children stop) and escalates. Agents in no group run in an implicit
    ``agents`` group (one_for_one, the defaults below). Children start in list order.
    """

    name: Name
    strategy: Literal["one_for_one", "one_for_all", "rest_for_one"] = "one_for_one"
    max_restarts: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 3
    within: Timeout = 5.0
    backoff: Backoff = Backoff()
    children: tuple[str, ...] = ()


class TopicConfig(_Section, frozen=True):
    """One entry of ``topics:`` — a pub/sub topic and the agents subscribed from the start."""

    name: Name
    subscribers: tuple[str, ...] = ()


class WorkloadTask(_Section, frozen=True):
    """One task of the workload: ``input`` (a text or a mapping of fields) sent to ``agent``.

    ``agent`` defaults to ``workload.agent``; ``id`` (default: from what it asks,
    ``task-<digest>``) keys the result line and, with what it asks, the durable journal, so a
    resumed run skips finished tasks.
    """

    input: str | dict[str, Any]
    agent: str | None = None
    id: str | None = None
    priority: Priority = 0


class Workload(_Section, frozen=True):
    """``workload:`` — inline ``tasks`` or a JSONL ``file`` of them (one task per line).

    ``agent`` is the default recipient; ``concurrency`` tasks run at once; a task that takes
    longer than ``timeout`` seconds fails. No workload: ``actoros run`` serves until stopped.
    """

    tasks: tuple[WorkloadTask, ...] = ()
    file: str | None = None
    agent: str | None = None
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 8
    timeout: Timeout = 120.0


class GatewayToken(_Section, frozen=True):
    """One entry of ``gateway.tokens:`` — a bearer token and what it may reach.

    The secret is either written here (``token``) or read from the environment variable
    ``token_env`` names when the system starts (exactly one of the two). ``name`` labels the
    token in logs (never the secret itself). ``agents``: the agents it may talk to, or
    ``["*"]`` for every agent and, with ``allow_raw_model``, the raw model.
    """

    name: Annotated[str, msgspec.Meta(min_length=1)]
    token: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    token_env: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    agents: tuple[str, ...] = ("*",)


class GatewayConfig(_Section, frozen=True):
    """``gateway:`` — the OpenAI-compatible HTTP gateway (and ``/metrics``, the live page).

    It listens on ``host``:``port`` (``port: 0``: any free port, logged as
    ``gateway.listening``). With ``tokens``, every request needs ``Authorization: Bearer
    <token>`` and reaches only that token's agents; without tokens no auth is asked, so the
    gateway then listens on a loopback address only. ``allow_raw_model``: the ``model`` field may
    also name the inference actor's model, sending the messages straight to it. At most
    ``max_concurrent`` requests are served at once (more get 429); each may take at most
    ``request_timeout`` seconds (then 504). Limits against hostile clients (docs/gateway.md):
    a request body is at most ``max_body_bytes`` (413), its headers must arrive within
    ``header_timeout`` seconds of the connection or of its first byte (else the connection
    is closed) and its body within ``body_timeout`` (408); at most ``max_connections``
    connections are served at once (one more gets 503).
    """

    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    tokens: tuple[GatewayToken, ...] = ()
    allow_raw_model: bool = False
    max_concurrent: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 256
    request_timeout: Timeout = 300.0
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1 << 30)] = 1 << 20
    header_timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0
    body_timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1000


class NodeConfig(_Section, frozen=True):
    """One entry of ``cluster.nodes:`` — a process, placed by Ray, that runs some groups.

    ``groups``: names of entries of ``groups:`` that run in this node (a group runs on one
    node only). ``resources``: what Ray reserves for the node's process, by Ray resource name:
    ``CPU``, ``GPU``, ``memory`` and ``object_store_memory`` (in bytes), or a custom resource
    of the cluster; ``{CPU: 0}`` reserves nothing. ``inference``: the node runs an inference
    actor (an engine, as the ``inference:`` section describes) of its own, and the head's
    ``/kernel/inference`` routes every agent's requests over all of them (by queue depth,
    keeping each agent on the engine it warmed); on the head (the first node) it says whether
    the head keeps an engine too. With no node but the head saying it, the head's one
    inference actor serves every node. ``engine_args`` are passed through to that node's
    engine over the section's (``tensor_parallel_size``, ``gpu_memory_utilization``, ...).
    ``throughput``: messages one actor of the node handles before its loop serves the others,
    the node's links among them; lower it on a node of CPU-bound actors, so that it sends and
    answers the other nodes' messages sooner.
    """

    name: Name
    groups: tuple[str, ...] = ()
    # one bound for counts and bytes: a petabyte of memory is the most a node may ask for
    resources: dict[
        Annotated[str, msgspec.Meta(min_length=1, max_length=100)],
        Annotated[float, msgspec.Meta(ge=0, le=1e15)],
    ] = msgspec.field(default_factory=lambda: {"CPU": 1.0})
    inference: bool = False
    engine_args: dict[str, Any] = {}
    throughput: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 64


class ClusterConfig(_Section, frozen=True):
    """``cluster:`` — where the actors run: one process (``local``), or Ray actors (``ray``).

    With ``backend: ray`` each of ``nodes`` is a process that Ray places, running the groups
    it names. The first node listed is the head: it hosts the kernel services and every group
    no node names (the implicit ``agents`` group too). ``address``: ``local`` starts a Ray
    instance in this process (on this machine), ``auto`` joins the one already running here
    and ``ray://host:port`` joins a remote cluster. ``heartbeat``: seconds between liveness
    pings of each node. ``max_restarts`` / ``within``: the head's intensity for restarting
    nodes whose process died (more restarts than that within that many seconds fail the
    system, as a group's would). Messages between nodes are encoded by msgspec; ``pickle: true``
    allows pickle as a declared fallback for those msgspec cannot carry (loading a pickle
    runs code: only between nodes you trust). No section, or ``backend: local``: the single
    process of a system without a cluster.
    """

    backend: Literal["local", "ray"] = "local"
    address: Annotated[str, msgspec.Meta(min_length=1, max_length=300)] = "local"
    heartbeat: Annotated[float, msgspec.Meta(gt=0, le=60)] = 1.0
    max_restarts: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 3
    within: Timeout = 60.0
    pickle: bool = False
    nodes: tuple[NodeConfig, ...] = ()


class Config(_Section, frozen=True):
    """A whole ``config.yaml``; every section is optional."""

    system: SystemConfig = SystemConfig()
    inference: InferenceConfig | None = None
    services: ServicesConfig = ServicesConfig()
    agents: tuple[AgentConfig, ...] = ()
    groups: tuple[GroupConfig, ...] = ()
    topics: tuple[TopicConfig, ...] = ()
    workload: Workload | None = None
    gateway: GatewayConfig | None = None
    cluster: ClusterConfig | None = None
