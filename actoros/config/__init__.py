"""The ``config.yaml`` schema and its loader.

A config file describes one whole system: the kernel (``system``, ``services``), the model
(``inference``), the agents, how they are supervised (``groups``), the pub/sub ``topics``, the
``workload`` to run, the HTTP ``gateway`` and the Ray ``cluster`` it may run on. Every section
is a frozen msgspec Struct with defaults where one makes sense; an unknown key is an error,
never silently ignored.

``load_config(path)`` reads a file and returns a ``Config``, or raises ``ConfigError`` with
*every* problem it found, each a ``Problem(path, line, message)`` rendered as one line::

    config.yaml:14: agents[2].tools[0]: unknown tool 'serch' (known: calculator, clock, ...)

How problems are found: the YAML is composed into a node tree first, so the line of every key
and list item is known; the data is then decoded with ``msgspec.convert`` (which stops at its
first error, reported with its path and line); a config that decodes is then checked across
fields (names that must refer to agents, tools, topics; duplicates; files that must exist),
and all of those problems are reported together. ``normalize_tools(config)`` is the one
rewrite the system runs on top (tools an agent names as ``module:function``, see ``tools.py``).

Relative paths (``system.state_dir``, ``services.*.db``, ``workload.file``) are relative to
the config file's folder; ``load_config`` returns them resolved to absolute paths. This package
and ``cli.py`` are the only ones that read YAML: everything below takes these Structs.
"""

from __future__ import annotations

from .loader import load_config, parse_config
from .problems import ConfigError, Problem
from .schema import (
    BUILTIN_TOOLS,
    AgentConfig,
    Backoff,
    ClusterConfig,
    Config,
    GatewayConfig,
    GatewayToken,
    GroupConfig,
    InferenceConfig,
    NodeConfig,
    Permissions,
    Rule,
    SchedulerConfig,
    ServicesConfig,
    SubmitAction,
    SystemConfig,
    ThreadsConfig,
    ToolsConfig,
    TopicConfig,
    Workload,
    WorkloadTask,
)
from .tools import normalize_tools
from .workload import load_workload_file

__all__ = [
    "BUILTIN_TOOLS",
    "AgentConfig",
    "Backoff",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "GatewayConfig",
    "GatewayToken",
    "GroupConfig",
    "InferenceConfig",
    "NodeConfig",
    "Permissions",
    "Problem",
    "Rule",
    "SchedulerConfig",
    "ServicesConfig",
    "SubmitAction",
    "SystemConfig",
    "ThreadsConfig",
    "ToolsConfig",
    "TopicConfig",
    "Workload",
    "WorkloadTask",
    "load_config",
    "load_workload_file",
    "normalize_tools",
    "parse_config",
]
