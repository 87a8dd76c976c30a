"""Delegation cycles: a loop of rule agents that one message goes round is a config error;
a loop that needs a model's choice or a message no rule set allows is not."""

from __future__ import annotations

import textwrap

import msgspec
import pytest
import yaml

from actoros.config import Config, ConfigError, parse_config
from actoros.config.delegation import delegation_cycles

pytestmark = pytest.mark.timeout(10)


def problems(text: str) -> list[str]:
    try:
        parse_config(textwrap.dedent(text), source="c.yaml")
    except ConfigError as exc:
        return exc.lines()
    return []


def cycles(text: str) -> list[str]:
    agents = msgspec.convert(yaml.safe_load(textwrap.dedent(text)), Config).agents
    return [cycle.names(agents) for cycle in delegation_cycles(agents)]


def test_two_rule_agents_forwarding_to_each_other_are_a_cycle() -> None:
    assert problems(
        """\
        agents:
          - {name: router, kind: rule, rules: [{forward: b}]}
          - name: b
            kind: rule
            rules:
              - {match: {text: hello}, reply: hi}
              - forward: router
        """
    ) == [
        "c.yaml:2: agents[0].rules[0].forward: delegation cycle router -> b -> router: an empty "
        "message is forwarded round it for ever (change a rule's condition or target)"
    ]


def test_a_cycle_is_named_from_the_agent_listed_first_and_reported_once() -> None:
    text = """\
        agents:
          - {name: c, kind: rule, rules: [{contains: {text: ord}, forward: a}]}
          - {name: a, kind: rule, rules: [{contains: {text: order}, forward: b}, {reply: x}]}
          - name: b
            kind: rule
            rules: [{contains: {text: urgent}, forward: c}, {contains: {text: order}, forward: c}]
        """
    assert cycles(text) == ["c -> a -> b -> c"]
    [line] = problems(text)
    assert "a message like 'order urgent' is forwarded round it" in line


def test_the_conditions_along_the_loop_are_met_together() -> None:
    assert cycles(
        """\
        agents:
          - {name: a, kind: rule, rules: [{match: {kind: x}, forward: b}, {reply: done}]}
          - {name: b, kind: rule, rules: [{contains: {text: help}, forward: a}, {reply: done}]}
        """
    ) == ["a -> b -> a"]


def test_contradicting_conditions_are_no_cycle() -> None:
    assert (
        cycles(
            """\
        agents:
          - {name: a, kind: rule, rules: [{match: {kind: x}, forward: b}, {reply: done}]}
          - {name: b, kind: rule, rules: [{match: {kind: y}, forward: a}, {reply: done}]}
        """
        )
        == []
    )


def test_an_earlier_rule_that_answers_first_breaks_the_loop() -> None:
    assert (
        cycles(
            """\
        agents:
          - {name: a, kind: rule, rules: [{contains: {text: order}, forward: b}, {reply: x}]}
          - {name: b, kind: rule, rules: [{contains: {text: ord}, reply: got it}, {forward: a}]}
        """
        )
        == []
    )


def test_a_forwarded_text_is_a_string_so_a_number_match_cannot_loop() -> None:
    assert (
        cycles(
            """\
        agents:
          - {name: a, kind: rule, rules: [{match: {text: 5}, forward: b}, {reply: x}]}
          - {name: b, kind: rule, rules: [{forward: a}]}
        """
        )
        == []
    )


def test_a_loop_through_an_llm_agent_is_only_possible_and_not_reported() -> None:
    assert (
        problems(
            """\
        inference: {engine: fake}
        agents:
          - {name: router, kind: rule, rules: [{forward: helper}]}
          - {name: helper, kind: llm, permissions: {agents: [router]}}
        """
        )
        == []
    )


def test_a_forward_the_permissions_refuse_is_no_loop() -> None:
    # the refused forward is a problem of its own, not a cycle
    assert problems(
        """\
        agents:
          - {name: a, kind: rule, permissions: {agents: [c]}, rules: [{forward: b}]}
          - {name: b, kind: rule, rules: [{forward: a}]}
          - {name: c, kind: rule, rules: [{reply: x}]}
        """
    ) == [
        "c.yaml:2: agents[0].rules[0].forward: forwarding to 'b' is not allowed by "
        "permissions.agents"
    ]


def test_a_star_permission_allows_the_loop() -> None:
    assert cycles(
        """\
        agents:
          - {name: a, kind: rule, permissions: {agents: ["*"]}, rules: [{forward: b}]}
          - {name: b, kind: rule, rules: [{forward: a}]}
        """
    ) == ["a -> b -> a"]


def test_a_long_chain_without_a_loop_is_fine() -> None:
    chain = "".join(
        f"  - {{name: a{i}, kind: rule, rules: [{{forward: a{i + 1}}}]}}\n" for i in range(300)
    )
    assert cycles(f"agents:\n{chain}  - {{name: a300, kind: rule, rules: [{{reply: x}}]}}\n") == []
