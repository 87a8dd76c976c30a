"""Agents: actors that decide on their own — by rules (``RuleAgent``) or with an LLM
(``LLMAgent``) — and act through syscalls to the kernel services, checked against their
permissions. Users ask an agent with a ``UserMessage`` and get an ``AgentReply``, or an
``AgentError`` saying why there is none; with ``UserMessage(stream=True)``, an
``AgentStream`` of ``AgentDelta``s ending in the ``AgentReply``."""

from .base import Agent
from .llm import LLMAgent
from .messages import MAX_HOPS, AgentError, AgentReply, HopLimitExceeded, UserMessage
from .permissions import access_permissions
from .protocol import Delegate, FinalAnswer, Malformed, ToolCall, parse_step, protocol_prompt
from .rule import RuleAgent
from .stream import AgentDelta, AgentStream

__all__ = [
    "Agent",
    "AgentDelta",
    "AgentError",
    "AgentReply",
    "AgentStream",
    "Delegate",
    "FinalAnswer",
    "HopLimitExceeded",
    "LLMAgent",
    "MAX_HOPS",
    "Malformed",
    "RuleAgent",
    "ToolCall",
    "UserMessage",
    "access_permissions",
    "parse_step",
    "protocol_prompt",
]
