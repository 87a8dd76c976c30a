"""Composing YAML within bounds: a YAML bomb or deep nesting is one problem line, at once."""

from __future__ import annotations

import pytest
import yaml

from actoros.config import ConfigError, parse_config
from actoros.config.composing import MAX_ALIAS_NODES, MAX_DEPTH

TIMESTAMP = "tag:yaml.org,2002:timestamp"

pytestmark = pytest.mark.timeout(10)

LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [
        f"{n}: &{n} [{','.join(['*' + p] * 9)}]"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    ]
)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="c.yaml")
    return caught.value.lines()


def test_a_billion_laughs_is_refused_at_the_alias_that_passes_the_bound() -> None:
    engine_args = "".join(f"    {line}\n" for line in LAUGHS.splitlines())
    assert problems(f"inference:\n  engine: fake\n  engine_args:\n{engine_args}") == [
        f"c.yaml:9: invalid YAML: aliases expand to more than {MAX_ALIAS_NODES} nodes "
        "(a YAML bomb?): write the values out"
    ]


def test_an_alias_tree_that_doubles_is_refused() -> None:
    tree = ["x0: &x0 {k: v}"] + [f"x{i}: &x{i} [*x{i - 1}, *x{i - 1}]" for i in range(1, 30)]
    [line] = problems("\n".join(tree))
    assert "aliases expand to more than" in line


def test_merge_keys_within_the_bound_still_work() -> None:
    text = "agents:\n  - &rule {name: a0, kind: rule, rules: [{reply: hi}], max_steps: 2}\n"
    text += "".join(f"  - {{<<: *rule, name: a{i}}}\n" for i in range(1, 200))
    config = parse_config(text, source="c.yaml")
    assert len(config.agents) == 200 and config.agents[199].max_steps == 2


@pytest.mark.parametrize("text", ["x: &a [*a]\n", "system: &s {name: *s}\n"])
def test_a_recursive_alias_is_one_line(text: str) -> None:
    [line] = problems(text)
    assert line.startswith("c.yaml:1: invalid YAML: alias *")
    assert line.endswith("is inside the node it names (a recursive alias)")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 100_000])
def test_nesting_past_the_bound_is_one_line(depth: int) -> None:
    assert problems("x: " + "[" * depth + "]" * depth + "\n") == [
        f"c.yaml:1: invalid YAML: this value nests more than {MAX_DEPTH} levels deep: flatten it"
    ]


def test_nesting_at_the_bound_is_fine() -> None:
    depth = MAX_DEPTH - 3  # the document, inference and engine_args are three levels
    config = parse_config(
        "inference: {engine: fake, engine_args: {x: " + "[" * depth + "]" * depth + "}}\n"
    )
    assert config.inference is not None


def test_aliases_cannot_nest_past_the_bound_either() -> None:
    nests = ["d0: &d0 " + "[" * 60 + "]" * 60]
    nests += [f"d{i}: &d{i} " + "[" * 60 + f"*d{i - 1}" + "]" * 60 for i in range(1, 3)]
    assert problems("\n".join(nests)) == [
        f"c.yaml:2: invalid YAML: alias *d0 nests more than {MAX_DEPTH} levels deep: flatten it"
    ]


def test_a_character_yaml_forbids_is_named_with_its_line() -> None:
    assert problems("system:\n  name: x\x00\n") == [
        "c.yaml:2: invalid YAML: the character '\\x00' is not allowed"
    ]


def test_an_integer_longer_than_python_converts_is_one_line() -> None:
    assert problems("workload: {concurrency: " + "9" * 5000 + "}\n") == [
        "c.yaml:1: invalid YAML: a number of 5000 digits is too long"
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2024-13-45", "'2024-13-45' is not a valid timestamp (month must be in 1..12)"),
        ("!!bool maybe", "'maybe' is not a valid bool"),
        ("!!float abc", "'abc' is not a valid float (could not convert string to float: 'abc')"),
    ],
)
def test_a_scalar_yaml_cannot_convert_is_one_line(value: str, problem: str) -> None:
    assert problems(f"system:\n  name: {value}\n") == [
        f"c.yaml:2: invalid YAML: {problem}: quote it to make it text"
    ]


def test_a_library_patching_safe_loader_does_not_change_how_a_config_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # what lm-format-enforcer does on import (vLLM's structured outputs import it): every
    # timestamp constructed as a string, for every SafeLoader in the process
    constructors = yaml.SafeLoader.yaml_constructors
    monkeypatch.setitem(constructors, TIMESTAMP, constructors["tag:yaml.org,2002:str"])
    value, problem = "2024-13-45", "'2024-13-45' is not a valid timestamp (month must be in 1..12)"
    assert problems(f"system:\n  name: {value}\n") == [
        f"c.yaml:2: invalid YAML: {problem}: quote it to make it text"
    ]
