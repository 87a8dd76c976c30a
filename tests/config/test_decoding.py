"""Decode errors in words: every number of the schema has a range, stated when it is missed."""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec.inspect as mi
import pytest
import yaml

from actoros.config import Config, ConfigError, parse_config

from .malformed import BASE, numeric_fields, put

pytestmark = pytest.mark.timeout(10)


def problems(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump(data), source="c.yaml")
    return caught.value.lines()


def dotted(at: tuple[str | int, ...]) -> str:
    return "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in at).lstrip(".")


@pytest.mark.parametrize(("at", "kind"), numeric_fields(), ids=lambda v: str(v))
@pytest.mark.parametrize("value", [10**30, -(10**30), math.inf, -math.inf, math.nan])
def test_every_number_of_the_schema_refuses_absurd_values(
    at: tuple[str | int, ...], kind: str, value: float
) -> None:
    if kind == "int" and isinstance(value, float):
        value = 10**30 if value != value or value > 0 else -(10**30)  # an int field's absurd int
    data = yaml.safe_load(BASE)
    put(data, at, value)
    [line] = problems(data)
    assert f": {dotted(at)}: " in line and "is out of range (allowed: " in line, line


def test_every_number_of_the_schema_has_an_upper_bound() -> None:
    def numbers(kind: mi.Type, at: str) -> list[tuple[str, mi.Type]]:
        if isinstance(kind, mi.UnionType):
            return [n for t in kind.types for n in numbers(t, at)]
        if isinstance(kind, mi.VarTupleType | mi.ListType):
            return numbers(kind.item_type, at + "[]")
        if isinstance(kind, mi.StructType):
            return [n for f in kind.fields for n in numbers(f.type, f"{at}.{f.encode_name}")]
        return [(at, kind)] if isinstance(kind, mi.IntType | mi.FloatType) else []

    found = numbers(mi.type_info(Config), "")
    assert len(found) >= 20
    unbounded = [at for at, kind in found if kind.le is None and kind.lt is None]
    assert unbounded == []


@pytest.mark.parametrize(
    ("at", "value", "line"),
    [
        (
            ("workload", "concurrency"),
            10**6,
            "workload.concurrency: 1000000 is out of range (allowed: 1 to 10000)",
        ),
        (
            ("services", "scheduler", "workers"),
            10**30,
            "services.scheduler.workers: 1e+30 is out of range (allowed: 1 to 10000)",
        ),
        (
            ("workload", "timeout"),
            math.inf,
            "workload.timeout: .inf is out of range (allowed: above 0, up to 86400)",
        ),
        (
            ("agents", 0, "temperature"),
            math.nan,
            "agents[0].temperature: .nan is out of range (allowed: 0 to 10)",
        ),
        (
            ("agents", 1, "max_tokens"),
            10**30,
            "agents[1].max_tokens: 1e+30 is out of range (allowed: 1 to 1000000)",
        ),
        (
            ("agents", 0, "mailbox"),
            0,
            "agents[0].mailbox: 0 is out of range (allowed: 1 to 10000000)",
        ),
    ],
)
def test_a_value_out_of_range_states_the_value_and_the_range(
    at: tuple[str | int, ...], value: Any, line: str
) -> None:
    data = yaml.safe_load(BASE)
    put(data, at, value)
    [found] = problems(data)
    assert re.sub(r"^c.yaml:\d+: ", "", found) == line


def test_a_key_that_is_not_a_string_says_so() -> None:
    assert problems({"system": {1: "x"}}) == [
        "c.yaml:1: system: Expected 'str' for a key (quote the key)"
    ]


def test_a_name_has_a_length_bound() -> None:
    assert problems({"system": {"name": "x" * 101}}) == [
        "c.yaml:2: system.name: Expected 'str' of length <= 100"
    ]


def test_a_huge_hex_number_is_shown_by_its_length() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("workload: {concurrency: 0x" + "f" * 5000 + "}\n", source="c.yaml")
    assert caught.value.lines() == [
        "c.yaml:1: workload.concurrency: a number of 5000 hex digits is out of range "
        "(allowed: 1 to 10000)"
    ]
