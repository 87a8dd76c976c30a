"""When a rule's condition holds: the one definition that ``RuleAgent`` acts by and that
``validate`` reasons with (``delegation.py``), so the two never disagree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .schema import Rule


def matches(rule: Rule, fields: Mapping[str, Any]) -> bool:
    """Whether ``rule``'s condition holds for ``fields``: every ``match`` field equals its
    value and every ``contains`` field holds its text (case-insensitive)."""
    for name, expected in rule.match.items():
        if name not in fields or fields[name] != expected:
            return False
    for name, text in rule.contains.items():
        value = fields.get(name)
        if value is None or text.casefold() not in str(value).casefold():
            return False
    return True


def first_match(rules: tuple[Rule, ...], fields: Mapping[str, Any]) -> Rule | None:
    """The rule that acts on ``fields``: the first whose condition holds."""
    return next((rule for rule in rules if matches(rule, fields)), None)
