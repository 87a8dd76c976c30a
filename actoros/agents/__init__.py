"""Agents: actors that decide on their own — by rules (``RuleAgent``) or with an LLM
(``LLMAgent``) — and act through syscalls to the kernel services."""
